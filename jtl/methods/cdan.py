"""CDAN (Long et al. 2018): domain adversarial training conditioned on the classifier's output.

The discriminator sees the multilinear map h = f ⊗ g (outer product of features f in R^D and
class probabilities g = softmax(logits) in R^C, flattened to D*C), so it can tell domains apart
per class and the adversarial game aligns the joint distribution of features and predictions.
When D*C is large, `randomized: true` replaces it by the randomized multilinear map
h = (f R_f) ⊙ (g R_g) / sqrt(k) with fixed Gaussian R_f (D, k), R_g (C, k), k = randomized_dim,
whose inner products approximate those of f ⊗ g.

As in the paper's code, g enters under stop_gradient (the adversarial signal trains features,
not the classifier directly) and the GRL / lambda schedule are DANN's. CDAN+E (`entropy: true`)
weights each sample's domain loss by w = 1 + exp(-H(g)), normalised per domain, so confident
(easy-to-transfer) samples count more; the weights are constants (stop_gradient).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jtl.errors import JtlError
from jtl.methods.adversarial import GradientReversal
from jtl.methods.base import METHODS
from jtl.methods.transductive import entropy


def multilinear_map(f: jax.Array, g: jax.Array) -> jax.Array:
    """(B, D), (B, C) -> (B, D*C) with h[b, d*C + c] = f[b, d] * g[b, c]."""
    return jnp.einsum("bd,bc->bdc", f, g).reshape(f.shape[0], -1)


def randomized_multilinear_map(
    f: jax.Array, g: jax.Array, dim: int, seed: int
) -> jax.Array:
    """(f R_f) ⊙ (g R_g) / sqrt(dim); R_f, R_g ~ N(0, 1) drawn from a fixed `seed` so they are
    the same at every step (not parameters: nothing to train, decay or checkpoint)."""
    kf, kg = jax.random.split(jax.random.key(seed))
    r_f = jax.random.normal(kf, (f.shape[1], dim), f.dtype)
    r_g = jax.random.normal(kg, (g.shape[1], dim), g.dtype)
    return (f @ r_f) * (g @ r_g) / math.sqrt(dim)


def entropy_weights(logits: jax.Array) -> jax.Array:
    """CDAN+E sample weights 1 + exp(-H(softmax(logits))), constant for the gradient."""
    return jax.lax.stop_gradient(1.0 + jnp.exp(-entropy(logits)))


@METHODS.register("cdan")
@dataclasses.dataclass(frozen=True)
class CDAN(GradientReversal):
    entropy: bool = False
    randomized: bool = False
    randomized_dim: int = 1024
    randomized_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.randomized and self.randomized_dim < 1:
            raise JtlError(f"method.randomized_dim must be >= 1, got {self.randomized_dim}")

    def disc_input_dim(self, feature_dim, num_classes):
        return self.randomized_dim if self.randomized else feature_dim * num_classes

    def condition(self, f: jax.Array, logits: jax.Array) -> jax.Array:
        g = jax.lax.stop_gradient(jax.nn.softmax(logits, -1))
        if self.randomized:
            return randomized_multilinear_map(f, g, self.randomized_dim, self.randomized_seed)
        return multilinear_map(f, g)

    def adaptation(self, model, out, key, progress):
        h_s = self.condition(out.f_s, out.logits_s)
        h_t = self.condition(out.f_t, out.logits_t)
        if self.entropy:
            w_s, w_t = entropy_weights(out.logits_s), entropy_weights(out.logits_t)
        else:
            w_s = w_t = None
        dom, metrics = self.adversarial(model, h_s, h_t, progress, w_s, w_t)
        return self.weight * dom, metrics
