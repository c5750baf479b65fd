"""SimCLR (Chen et al. 2020): self-supervised pretraining on unlabeled source images.

Two augmented views of each image (`jtl.domains.pp.Distort`, the pipeline's `distort` op, run
by the loss on its model input, inside the compiled step: k1, k2 = split(step key), one view
from each) pass through the backbone and a projection head g (`proj/`, an MLP); NT-Xent pulls
the two views of an image together against the other 2B - 2 images of the batch:

    loss = NT-Xent(g(f(aug1(x))), g(f(aug2(x))); temperature)

The loss reads `source/x` only: no label reaches it (the trainer hands a method only the
arrays in `uses`). The backbone is what transfers; `head` is left untrained (`summary.json`
says `head: untrained`: its accuracies are a random head's) and `proj` is dropped after
pretraining, as in the paper. Evaluate the encoder with `measure=[cluster]`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jtl.domains.pp import Distort
from jtl.methods.base import METHODS, Method


def _logits(z1: jax.Array, z2: jax.Array, temperature: float) -> tuple[jax.Array, jax.Array]:
    """Cosine similarities / temperature of the 2B rows of [z1; z2] (an anchor's own entry
    masked out) and each row's positive: its other view."""
    z = jnp.concatenate([z1, z2])
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    n, b = z.shape[0], z1.shape[0]
    sim = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, (z @ z.T) / temperature)
    return sim, jnp.concatenate([jnp.arange(b, n), jnp.arange(b)])


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float) -> jax.Array:
    """Normalised-temperature cross-entropy of Chen et al. (2020), eq. 1, averaged over all
    2B anchors: row i of [z1; z2] must pick its other view among the 2B - 1 other rows."""
    sim, positive = _logits(z1, z2, temperature)
    return optax.softmax_cross_entropy_with_integer_labels(sim, positive).mean()


class Projection(nnx.Module):
    """g(h) = W2 relu(W1 h): SimCLR's two-layer projection head."""

    def __init__(self, din: int, hidden: int, dout: int, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(din, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, dout, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.hidden(h)))


@METHODS.register("simclr")
@dataclasses.dataclass(frozen=True)
class SimCLR(Method):
    temperature: float = 0.5
    proj_dim: int = 64
    proj_hidden: int = 0  # 0: the backbone's feature width, as in the paper
    min_scale: float = 0.5
    max_ratio: float = 4 / 3
    max_degrees: float = 15.0
    contrast: float = 0.4
    noise_std: float = 0.05
    uses = frozenset({"source/x"})
    trainable = "(backbone|neck|proj)/.*"

    @property
    def distort(self) -> Distort:
        return Distort(self.min_scale, self.max_ratio, self.max_degrees, self.contrast,
                       self.noise_std)

    def modules(self, feature_dim, num_classes, rngs):
        return {"proj": Projection(feature_dim, self.proj_hidden or feature_dim, self.proj_dim,
                                   rngs)}

    def loss(self, model, batch, key, progress):
        x = batch["source"]["x"]
        k1, k2 = jax.random.split(key)
        views = jnp.concatenate([self.distort(k1, x), self.distort(k2, x)])
        z = model.proj(model.features(views))
        z1, z2 = jnp.split(z, 2)
        sim, positive = _logits(z1, z2, self.temperature)
        loss = optax.softmax_cross_entropy_with_integer_labels(sim, positive).mean()
        # Share of anchors whose most similar other row is their own second view.
        return loss, {"ntxent": loss, "pair_acc": jnp.mean(jnp.argmax(sim, 1) == positive)}
