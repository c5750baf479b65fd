"""DomainBed's ARM (ARM-CML) network for the MNIST data sets (jtl/models/arm_mnist_cnn.py): the
context is shared within a support set and only there, the support sets of a training batch
are its environments' minibatches, and a short two-environment ColoredMNIST run trains
through the trainer's vmapped search lanes with the context network held at its initialisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl import rundir
from jtl.domains import _domainbed_mnist as domainbed_mnist
from jtl.domains._builders import read_idx
from jtl.models.arm_mnist_cnn import Fixed
from jtl.models.base import build_network, path_str
from jtl.train.checkpoint import manager
from jtl.train.data import prepare
from jtl.train.step import stat_paths
from tests.conftest import compose_cfg

DATA = Path(__file__).resolve().parents[2] / "../shared/data"
NO_MODULES = type("NoModules", (), {"modules": lambda *a: {}})()


def net(support: int, cin: int = 2, train_context: bool = False) -> Any:
    return build_network({"name": "arm_mnist_cnn", "input_shape": [28, 28, cin],
                          "support_size": support, "train_context": train_context}, 2,
                         NO_MODULES, seed=0)


@nnx.jit
def predict(m: Any, x: jax.Array) -> jax.Array:
    return m(x)


@nnx.jit
def contexts(m: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(each row's support-set context, each row's own context map)."""
    return m.backbone.contexts(x), m.backbone.context(x)


def images(n: int, seed: int = 0, cin: int = 2) -> jax.Array:
    return jax.random.uniform(jax.random.key(seed), (n, 28, 28, cin))


def test_context_is_shared_within_a_support_group_only() -> None:
    """Support 4, batch 8: changing row 1 (group A = rows 0-3) moves every prediction of
    group A and none of group B (rows 4-7), and each group predicts as it would alone."""
    m = net(4)
    x = images(8)
    y = predict(m, x)
    y2 = predict(m, x.at[1].set(1.0 - x[1]))
    moved = np.abs(np.asarray(y2 - y)).max(axis=1)
    assert (moved[[0, 2, 3]] > 1e-6).all()  # rows of A not changed themselves: via the context
    np.testing.assert_array_equal(np.asarray(y2[4:]), np.asarray(y[4:]))
    np.testing.assert_allclose(np.asarray(predict(m, x[4:])), np.asarray(y[4:]), rtol=0, atol=1e-5)
    c, ctx = contexts(m, x)
    np.testing.assert_allclose(np.asarray(c[:4]), np.asarray(
        jnp.broadcast_to(ctx[:4].mean(0), (4, 28, 28, 1))), atol=1e-6)


def test_a_batch_the_support_size_does_not_divide_is_one_group() -> None:
    m = net(4)
    x = images(6)
    c, ctx = contexts(m, x)
    whole = ctx.mean(0)
    np.testing.assert_allclose(np.asarray(c), np.asarray(jnp.broadcast_to(whole, c.shape)),
                               atol=1e-6)
    y, y2 = predict(m, x), predict(m, x.at[5].set(0.0))
    assert (np.abs(np.asarray(y2 - y))[:5].max(axis=1) > 1e-6).all()  # row 5 moves all rows


@pytest.mark.parametrize("cin", [2, 1])
def test_network_reads_c_plus_1_channels(cin: int) -> None:
    m = net(8, cin)
    assert m.backbone.blocks[0].conv.kernel.shape == (3, 3, cin + 1, 64)
    assert m.backbone.context.convs[0].kernel.shape == (5, 5, cin, 64)
    assert m.backbone.context.convs[2].kernel.shape == (5, 5, 64, 1)
    assert jax.eval_shape(m, images(8, cin=cin)).shape == (8, 2) and m.backbone.feature_dim == 128


def test_context_weights_are_fixed_unless_train_context() -> None:
    """DomainBed's Adam holds `self.network` only (built before the context net): the context
    weights are `Fixed` (outside the optimizer, as BatchNorm statistics) and get no gradient;
    with train_context they are parameters with a gradient."""
    fixed, trained = net(4), net(4, train_context=True)
    ctx = {p for p in stat_paths(fixed) if p.startswith("backbone/context/")}
    assert {"backbone/context/convs/0/kernel", "backbone/context/norms/1/scale"} <= ctx
    assert isinstance(fixed.backbone.context.convs[0].kernel, Fixed)
    assert not [p for p in stat_paths(trained) if p.endswith(("kernel", "scale"))]
    x, y = images(8), jnp.array([0, 1] * 4)

    @nnx.jit
    def grads(m: Any) -> Any:
        def loss(m: Any) -> jax.Array:
            return -jax.nn.log_softmax(m(x))[jnp.arange(8), y].mean()
        return nnx.grad(loss, argnums=nnx.DiffState(0, nnx.Param))(m)

    fixed.train()  # batch statistics, as in the training step
    trained.train()
    assert "context" not in grads(fixed)["backbone"]
    g = grads(trained)["backbone"]["context"]["convs"][0]["kernel"]
    assert float(jnp.abs(g.get_value()).max()) > 0
    with pytest.raises(Exception, match="support_size"):
        net(0)


class Plain:
    """A pipeline stand-in: the stored image as the model input, no augmentation."""

    augment = False

    def __call__(self, fields: dict, key: Any) -> jax.Array:
        return fields["image"].astype(jnp.float32) / 255.0


def test_training_support_groups_are_the_environments() -> None:
    """The trainer's two-source batch (`prepare`: source.0's draw, then source.1's) with
    support_size = trainer.batch_size: each row's context is its own environment's mean."""
    n = 8
    raw = {f"source.{k}": {"image": jax.random.randint(jax.random.key(k), (n, 28, 28, 2), 0,
                                                       256).astype(jnp.uint8),
                           "label": jnp.zeros(n, jnp.int32)} for k in range(2)}
    batch = prepare(raw, {k: Plain() for k in raw}, jax.random.key(0))["source"]
    m = net(n)
    c, ctx = contexts(m, batch["x"])
    for d in range(2):
        rows = np.flatnonzero(np.asarray(batch["domain"]) == d)
        np.testing.assert_allclose(np.asarray(c[rows]), np.asarray(jnp.broadcast_to(
            ctx[rows].mean(0), (n, 28, 28, 1))), atol=1e-6)
    assert not np.allclose(np.asarray(c[0]), np.asarray(c[n]), atol=1e-4)


def leaves(run: Path) -> dict[str, np.ndarray]:
    with manager(run / rundir.CHECKPOINTS) as mgr:
        tree = mgr.restore(mgr.latest_step())["params"]
    return {path_str(p): np.asarray(a)
            for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_short_two_environment_colored_mnist_run(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """DomainBed's ARM = ERM (`source_only`) on this network: +90%, +80% -> -90%, a 2-sample
    search (one vmapped program, traced lr per lane), a tenth of MNIST (as test_mnist_cnn).
    The context weights end where they started, its BatchNorm statistics and the MNIST_CNN
    weights moved; support = 8 rows."""
    from jtl.train import train_and_evaluate
    from jtl.train.build import network

    d = DATA / "mnist"
    x = np.concatenate([read_idx(d / "train-images-idx3-ubyte.gz", 3),
                        read_idx(d / "t10k-images-idx3-ubyte.gz", 3)])
    y = np.concatenate([read_idx(d / "train-labels-idx1-ubyte.gz", 1),
                        read_idx(d / "t10k-labels-idx1-ubyte.gz", 1)]).astype(np.int64)
    monkeypatch.setattr(domainbed_mnist, "mnist_70k", lambda cfg, ctx: (x[:7000], y[:7000]))
    small = "test_fraction: 0.01, val_fraction: 0.01, max_train: 256"
    cfg = compose_cfg([
        f"sources=[{{name: colored_mnist, env: '+90%', {small}}}, "
        f"{{name: colored_mnist, env: '+80%', {small}}}]",
        "domain@target=colored_mnist", "target.env=-90%", "target.test_fraction=0.01",
        "target.val_fraction=0.01", "target.max_train=256", "model=arm_mnist_cnn",
        "method=source_only", "optim=adam", "trainer=debug", "trainer.steps=6",
        "trainer.eval_every=6", "trainer.checkpoint_every=6", "trainer.log_every=6",
        "trainer.batch_size=8", "trainer.seeds=[0]", "trainer.search={samples: 2}",
        "trainer.progress=false", "trainer.tensorboard=false"])
    train_and_evaluate(cfg, tmp_path / "runs")
    run = tmp_path / "runs/sample1/seed0"  # a sampled lr, beside the defaults' lane
    s = rundir.read_summary(run)
    saved = rundir.load_config(run)
    assert (s["status"], s["step"], s["model"]) == ("completed", 6, "arm_mnist_cnn")
    # trained parameters: MNIST_CNN on 3 channels + the head; the fixed context net is not one
    assert s["num_params"] == 371_136 + 9 * 64 + 258
    assert saved["model"]["support_size"] == 8 and 0.0 <= s["target/test/accuracy"] <= 1.0
    fresh = nnx.state(network(saved, 2, NO_MODULES)).to_pure_dict()
    start = {path_str(p): np.asarray(a)
             for p, a in jax.tree_util.tree_flatten_with_path(fresh)[0]}
    end = leaves(run)
    for p in ("backbone/context/convs/0/kernel", "backbone/context/convs/2/bias",
              "backbone/context/norms/0/scale"):
        np.testing.assert_array_equal(end[p], start[p])
    for p in ("backbone/context/norms/0/mean", "backbone/blocks/0/conv/kernel", "head/kernel"):
        assert np.abs(end[p] - start[p]).max() > 1e-6, p
