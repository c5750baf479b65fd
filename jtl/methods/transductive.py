"""Shared plumbing for transductive methods: labeled source + unlabeled target, never target labels.

Every such method minimises  CE(source) + (its adaptation term), so the source loss, the joint
forward pass and the metrics live here once; a method only writes `adaptation`.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.methods.base import Batch, Method, accuracy, cross_entropy


class Forward(NamedTuple):
    """Backbone features and head logits of one step, split back into source and target."""

    f_s: jax.Array
    f_t: jax.Array
    logits_s: jax.Array
    logits_t: jax.Array


def forward(model: nnx.Module, batch: Batch) -> Forward:
    """One backbone/head pass over [source; target]: both domains see the same weights and any
    batch-dependent normalisation sees both, as in DANN/TLlib; the result is split by size.
    A text model's input is a mapping (tokens, mask): concatenated field by field."""
    xs, xt = batch["source"]["x"], batch["target"]["x"]
    f = model.features(jax.tree.map(lambda a, b: jnp.concatenate([a, b]), xs, xt))
    logits = model.head(f)
    n = jax.tree.leaves(xs)[0].shape[0]
    return Forward(f[:n], f[n:], logits[:n], logits[n:])


def entropy(logits: jax.Array) -> jax.Array:
    """Per-sample prediction entropy H(p) = -sum_c p_c log p_c, p = softmax(logits), in nats.
    Computed from log-softmax so it stays finite for saturated predictions."""
    logp = jax.nn.log_softmax(logits, -1)
    return -jnp.sum(jnp.exp(logp) * logp, -1)


@dataclasses.dataclass(frozen=True)
class Transductive(Method):
    """loss = CE(source) + adaptation(...). `weight` is the adaptation trade-off."""

    uses = frozenset({"source/x", "source/y", "target/x"})

    weight: float = 1.0

    def adaptation(
        self, model: nnx.Module, out: Forward, key: jax.Array, progress: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The weighted adaptation term (added to the source CE) and its metrics."""
        raise NotImplementedError

    def loss(self, model, batch, key, progress):
        out = forward(model, batch)
        y = batch["source"]["y"]
        ce = cross_entropy(out.logits_s, y)
        extra, metrics = self.adaptation(model, out, key, progress)
        return ce + extra, {"cls_loss": ce, "train_acc": accuracy(out.logits_s, y), **metrics}
