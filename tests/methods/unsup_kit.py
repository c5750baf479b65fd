"""Shared by the simclr / autoencoder tests: train a method on an npz source whose labels are
real, shuffled or a constant placeholder, and return the final parameters."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import nnx
from sklearn.datasets import load_digits

from jtl.methods import Method
from jtl.models import build_network
from jtl.train import train_and_evaluate
from jtl.train.checkpoint import manager


def npz_source(folder: Path, labels: str) -> Path:
    """sklearn digits as an npz (floats in [0, 1]) with `labels` real, shuffled or zeros."""
    x, y = load_digits(return_X_y=True)
    x = (x.reshape(-1, 8, 8) / 16.0).astype(np.float32)
    if labels == "shuffled":
        y = np.random.default_rng(1).permutation(y)
    elif labels == "zeros":  # a label-free source: placeholders only
        y = np.zeros_like(y)
    path = folder / f"{labels}.npz"
    np.savez(path, x=x, y=y)
    return path


def train_params(fast_cfg, folder: Path, method: str, labels: str, *overrides: str):
    path = npz_source(folder, labels)
    run_dir = folder / f"{method}_{labels}"
    cfg = fast_cfg(f"method={method}", "domain@source=npz", f"source.path={path}",
                   "source.num_classes=10", "trainer.steps=6", "trainer.eval_every=6",
                   "trainer.checkpoint_every=6", "trainer.log_every=3",
                   "trainer.batch_size=16", *overrides)
    summary = train_and_evaluate(cfg, run_dir)
    assert summary["status"] == "completed"
    with manager(run_dir / "checkpoints") as m:
        return m.restore(m.latest_step())["params"]


def assert_identical(a, b) -> None:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def loss_grads(method: Method, seed: int = 0) -> tuple[dict, dict]:
    """Gradient (pure dict) and metrics of `method`'s loss on a tiny MLP (8x8 -> 16 -> 10)
    and a batch of 6 random images with no label."""
    # Shapes from an abstract build, values from numpy: eager nnx initialisers are slow.
    graphdef, params = nnx.split(nnx.eval_shape(lambda: build_network(
        {"name": "mlp", "input_shape": [8, 8, 1], "hidden": [16]}, 10, method, seed)))
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda a: jax.numpy.asarray(0.3 * rng.normal(size=a.shape), a.dtype),
                          params)
    x = jax.numpy.asarray(np.random.default_rng(seed).uniform(size=(6, 8, 8, 1)), "float32")

    @jax.jit
    def grads(p):
        def f(q):
            return method.loss(nnx.merge(graphdef, q), {"source": {"x": x}},
                               jax.random.key(seed), 0.0)
        return jax.grad(f, has_aux=True)(p)

    g, metrics = grads(params)
    return nnx.to_pure_dict(g), metrics
