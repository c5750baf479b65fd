"""DANN: the discriminator learns, and the backbone gets exactly -lambda * weight times the
gradient of the domain loss (the reversal really reaches the features)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from method_testkit import (
    assert_tree_close,
    ce,
    evaluate,
    hand_grads,
    make_batch,
    source_bce,
    target_bce,
    tiny,
    tree_axpy,
    tree_norm,
)

from jtl.errors import JtlError
from jtl.methods.adversarial import dann_lambda
from jtl.methods.dann import DANN

# disc_norm="none": the hand gradients below call the discriminator per domain, which a
# BatchNorm over the joint batch would not equal (BatchNorm: tests/train/test_batch_norm.py).
METHOD = DANN(weight=0.7, gamma=10.0, disc_hidden=8, disc_layers=2, disc_norm="none")
PROGRESS = 0.15


def test_gradients_and_metrics():
    graphdef, params = tiny(METHOD)
    batch = make_batch(shift=1.0)
    xs, ys, xt = batch["source"]["x"], batch["source"]["y"], batch["target"]["x"]
    _, metrics, g = evaluate(METHOD, graphdef, params, batch, PROGRESS)
    lam = float(dann_lambda(jnp.float32(PROGRESS)))
    assert 0.1 < lam < 0.9  # a point where a missing or wrong coefficient would show
    assert {"cls_loss", "domain_loss", "domain_acc", "lambda"} <= set(metrics)
    np.testing.assert_allclose(metrics["lambda"], lam, rtol=1e-6)
    assert 0.0 <= float(metrics["domain_acc"]) <= 1.0

    def cls(m):
        return ce(m.head(m.backbone(xs)), ys)

    def dom(m):  # the domain loss as if everything were *minimising* it (no reversal)
        return 0.5 * (jnp.mean(source_bce(m.disc(m.backbone(xs))))
                      + jnp.mean(target_bce(m.disc(m.backbone(xt)))))

    (_, g_cls), (dom_value, g_dom) = hand_grads(graphdef, params, cls, dom)
    np.testing.assert_allclose(metrics["domain_loss"], dom_value, rtol=1e-5)
    assert tree_norm(g_dom["backbone"]) > 1e-4 and tree_norm(g["disc"]) > 1e-4
    # backbone: CE gradient minus lambda * weight times the domain-loss gradient
    assert_tree_close(g["backbone"],
                      tree_axpy(-lam * METHOD.weight, g_dom["backbone"], g_cls["backbone"]))
    # discriminator: descends weight * domain loss, at full strength (no lambda)
    assert_tree_close(g["disc"], tree_axpy(METHOD.weight, g_dom["disc"]))
    # head: only the source classification loss
    assert_tree_close(g["head"], g_cls["head"])


def test_schedule_options():
    const = DANN(schedule="constant", disc_hidden=8)
    _, metrics, _ = evaluate(const, *tiny(const), make_batch(), progress=0.0)
    assert float(metrics["lambda"]) == 1.0
    with pytest.raises(JtlError):
        DANN(schedule="linear")
