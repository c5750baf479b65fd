"""Multitask: shared backbone, one head per task; the loss is CE(target head) + weight *
CE(source head), by hand; a source label space of another size trains end to end."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx
from method_testkit import CLASSES, evaluate, make_batch, np_ce, np_forward, tiny

from jtl.methods.multitask import Multitask
from jtl.train import train_and_evaluate


def test_loss_is_target_ce_plus_weighted_source_ce_on_its_own_head():
    method = Multitask(weight=0.3, source_classes=3)
    graphdef, params = tiny(method)
    batch = make_batch()
    batch["target"]["y"] = jnp.asarray([0, 1, 1, 0, 1])
    batch["source"]["y"] = jnp.asarray([0, 1, 2, 2, 1, 0])  # 3 source classes, 2 target ones
    loss, metrics, grads = evaluate(method, graphdef, params, batch)
    p = nnx.to_pure_dict(params)
    feats_s = np_forward(params, batch["source"]["x"])[0]
    logits_s = feats_s @ np.asarray(p["source_head"]["kernel"], np.float64) + np.asarray(
        p["source_head"]["bias"], np.float64)
    ce_t = np_ce(np_forward(params, batch["target"]["x"])[1], batch["target"]["y"])
    ce_s = np_ce(logits_s, batch["source"]["y"])
    np.testing.assert_allclose(loss, ce_t + 0.3 * ce_s, rtol=1e-5)
    np.testing.assert_allclose(metrics["source_loss"], ce_s, rtol=1e-5)
    assert p["source_head"]["kernel"].shape[1] == 3 and p["head"]["kernel"].shape[1] == CLASSES
    assert np.abs(np.asarray(grads["source_head"]["kernel"])).sum() > 0  # each head learns


def test_source_of_another_label_space_trains_with_its_own_head(fast_cfg, tmp_path):
    s = train_and_evaluate(fast_cfg("method=multitask", "source.classes=[0,1,2,3,4,5,6]",
                                    "target.classes=[7,8,9]", "trainer.steps=20"), tmp_path)
    assert s["num_classes"] == 3 and s["selected/val/split"] == "target/val"
    assert "source/test/accuracy" not in s  # the target's head does not score source classes
