"""BatchNorm (TLlib's bottleneck and discriminator): the training step normalises with batch
statistics and writes the running averages back into the state; the optimizer never moves
them; everything else (evaluation, features, measures) runs on the running averages."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl import rundir
from jtl.domains import Split
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.models import build_network
from jtl.train import train_and_evaluate
from jtl.train.checkpoint import manager
from jtl.train.evaluate import make_eval
from jtl.train.optim import build_optimizer, trainable_labels
from jtl.train.step import init_state, make_step, stat_paths

MODEL = {"name": "mlp", "input_shape": [4, 4, 1], "hidden": [8], "norm": "batch"}


def _net(method: str = "source_only", **kw):
    method = build_method({"name": method, **kw})
    return method, build_network(MODEL, 3, method, seed=0)


def _batch(n: int = 16, seed: int = 0) -> dict:
    x = jax.random.uniform(jax.random.key(seed), (n, 4, 4, 1))
    return {"source": {"x": x, "y": jnp.arange(n) % 3}}


def test_statistics_are_state_written_by_the_step_not_the_optimizer():
    method, net = _net()
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    fixed = stat_paths(net)
    assert fixed == ["backbone/blocks/0/norm/mean", "backbone/blocks/0/norm/var"]
    labels = jax.tree_util.tree_leaves(trainable_labels(params, ".*", None, fixed=fixed))
    assert labels.count("frozen") == 2
    # A large weight decay would visibly move the statistics if the optimizer touched them.
    tx = build_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.5},
                         params, 10, ".*", None, fixed=fixed)
    batch = _batch()
    state, _ = make_step(graphdef, method, tx, 10)(init_state(params, tx), batch,
                                                   jax.random.key(0))
    lin = params["backbone"]["blocks"][0]["linear"]
    h = batch["source"]["x"].reshape(16, -1) @ lin["kernel"] + lin["bias"]
    norm = state["params"]["backbone"]["blocks"][0]["norm"]
    # PyTorch's running update with momentum 0.1 from (0, 1): the batch's mean and variance.
    np.testing.assert_allclose(norm["mean"], 0.1 * h.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm["var"], 0.9 + 0.1 * h.var(0), rtol=1e-5, atol=1e-6)
    # The scale and shift are parameters: trained.
    assert not np.allclose(norm["scale"], params["backbone"]["blocks"][0]["norm"]["scale"])


def test_evaluation_uses_running_averages():
    _, net = _net()
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    norm = params["backbone"]["blocks"][0]["norm"]
    norm["mean"] = jnp.full(8, 0.3)
    norm["var"] = jnp.full(8, 2.0)
    x = np.asarray(_batch(10)["source"]["x"])
    split = Split.of(x, np.zeros(10, np.int32))
    evaluate = make_eval(graphdef)
    # Batch statistics would make a 1-example batch's logits differ from a 10-example one's.
    one = evaluate(params, Split.of(x[:1], np.zeros(1, np.int32)), batch_size=1)
    full = evaluate(params, split, batch_size=10)
    logits = nnx.merge(graphdef, params)(x)
    assert one["loss"] == pytest.approx(float(-jax.nn.log_softmax(logits[0])[0]), rel=1e-5)
    assert full["loss"] == pytest.approx(float(-jax.nn.log_softmax(logits)[:, 0].mean()),
                                         rel=1e-5)
    lin = params["backbone"]["blocks"][0]["linear"]
    h = x.reshape(10, -1) @ lin["kernel"] + lin["bias"]
    f = jax.nn.relu((h - 0.3) / np.sqrt(2.0 + 1e-5) * norm["scale"] + norm["bias"])
    np.testing.assert_allclose(net.head(f), logits, rtol=1e-5, atol=1e-5)


def test_dann_trains_the_normalised_discriminator(tmp_path, fast_cfg):
    cfg = fast_cfg("method=dann", "model.norm=batch", "method.disc_norm=batch",
                   "trainer.steps=20", "trainer.eval_every=20", "trainer.checkpoint_every=20")
    out = train_and_evaluate(cfg, tmp_path)
    assert out["status"] == "completed"
    with manager(tmp_path / rundir.CHECKPOINTS) as m:
        p = m.restore(m.latest_step())["params"]
    # Statistics moved from their (0, 1) start in the backbone and in both discriminator layers.
    assert not np.allclose(p["backbone"]["blocks"]["0"]["norm"]["mean"], 0)
    for i in ("0", "1"):
        assert not np.allclose(p["disc"]["norms"][i]["var"], 1)
        assert not np.allclose(p["disc"]["norms"][i]["scale"], 1)  # and the scale was trained


def test_unknown_norm_is_one_error(fast_cfg, tmp_path):
    with pytest.raises(JtlError, match=r"model\.norm"):
        train_and_evaluate(fast_cfg("model.norm=layer"), tmp_path / "a")
    with pytest.raises(JtlError, match=r"method\.disc_norm"):
        build_method({"name": "dann", "disc_norm": "group"})
