"""A tiny hand-built network and batches for method tests: backbone Linear 4->3, head 3->2.

Everything that differentiates is jitted once per call (eager nnx compiles op by op, which
would make these tests slow on a small CPU).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jtl.methods.base import Method

FEATURES, CLASSES, INPUTS = 3, 2, 4


class Tiny(nnx.Module):
    def __init__(self, method: Method, rngs: nnx.Rngs) -> None:
        self.backbone = nnx.Linear(INPUTS, FEATURES, rngs=rngs)
        self.head = nnx.Linear(FEATURES, CLASSES, rngs=rngs)
        for name, module in method.modules(FEATURES, CLASSES, rngs).items():
            setattr(self, name, module)

    def features(self, x: jax.Array) -> jax.Array:
        """What the head reads (`Network.features`; no neck here)."""
        return self.backbone(x)


def tiny(method: Method, seed: int = 0) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, params) as the trainer sees them. Shapes come from an abstract build and
    values from numpy (N(0, 0.5^2)): eager nnx initialisers compile op by op, which is slow."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: Tiny(method, nnx.Rngs(seed))))
    rng = np.random.default_rng(seed)
    return graphdef, jax.tree.map(
        lambda a: jnp.asarray(0.5 * rng.normal(size=a.shape), a.dtype), state)


def make_batch(seed: int = 0, n_s: int = 6, n_t: int = 5, shift: float = 0.0,
               scale: float = 1.0) -> dict[str, dict[str, jax.Array]]:
    """Source and target inputs; target = scale * noise + shift. No target labels at all, so a
    method that tried to read them would fail with a KeyError."""
    rng = np.random.default_rng(seed)
    return {
        "source": {
            "x": jnp.asarray(rng.normal(size=(n_s, INPUTS)), jnp.float32),
            "y": jnp.asarray(rng.integers(0, CLASSES, n_s)),
        },
        "target": {
            "x": jnp.asarray(scale * rng.normal(size=(n_t, INPUTS)) + shift, jnp.float32)
        },
    }


@functools.cache
def _compiled(method: Method, graphdef: nnx.GraphDef) -> Callable:
    def f(p, b, progress):
        return method.loss(nnx.merge(graphdef, p), b, jax.random.key(0), progress)

    return jax.jit(jax.value_and_grad(f, has_aux=True))


def evaluate(method: Method, graphdef: nnx.GraphDef, params: Any, batch: Any,
             progress: float = 0.5) -> tuple[jax.Array, dict[str, jax.Array], dict]:
    """(loss, metrics, gradient w.r.t. every parameter as a pure dict), jitted as in the
    trainer: params are a pure pytree merged back inside the traced function. Compiled once
    per (method, network); later calls with same-shaped batches reuse it."""
    (loss, metrics), g = _compiled(method, graphdef)(params, batch, jnp.float32(progress))
    return loss, metrics, nnx.to_pure_dict(g)


def hand_grads(graphdef: nnx.GraphDef, params: Any,
               *fns: Callable[[nnx.Module], jax.Array]) -> list[tuple[jax.Array, dict]]:
    """(value, gradient w.r.t. all parameters as a pure dict) of hand-written losses fn(model),
    in one compiled call. A key's part is the partial derivative with the rest held constant."""

    def all_grads(p):
        return [jax.value_and_grad(lambda q, fn=fn: fn(nnx.merge(graphdef, q)))(p) for fn in fns]

    return [(v, nnx.to_pure_dict(g)) for v, g in jax.jit(all_grads)(params)]


def ce(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Hand-written mean softmax cross-entropy."""
    logp = jax.nn.log_softmax(logits, -1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], -1))


def source_bce(z: jax.Array) -> jax.Array:
    """-log sigmoid(z), the BCE of a discriminator logit for a source sample (label 1)."""
    return jax.nn.softplus(-z)


def target_bce(z: jax.Array) -> jax.Array:
    """-log(1 - sigmoid(z)), the BCE for a target sample (label 0)."""
    return jax.nn.softplus(z)


def np_forward(params: Any, x: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """(features, logits) of the Tiny network in float64 numpy: the reference side of a test."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), nnx.to_pure_dict(params))
    f = np.asarray(x, np.float64) @ p["backbone"]["kernel"] + p["backbone"]["bias"]
    return f, f @ p["head"]["kernel"] + p["head"]["bias"]


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_ce(logits: np.ndarray, y: Any) -> float:
    """Mean softmax cross-entropy, in numpy."""
    p = np_softmax(logits)
    y = np.asarray(y)
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def assert_tree_close(a: Any, b: Any, atol: float = 1e-6) -> None:
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, atol=atol, rtol=1e-5), a, b)


def tree_norm(t: Any) -> float:
    return float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(t)))


def tree_axpy(scale: float, b: Any, a: Any | None = None) -> Any:
    """a + scale * b leafwise (scale * b when a is None)."""
    if a is None:
        return jax.tree.map(lambda v: scale * v, b)
    return jax.tree.map(lambda u, v: u + scale * v, a, b)
