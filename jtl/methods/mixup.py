"""Inter-domain Mixup (Xu et al. 2020, Yan et al. 2020), as DomainBed's `Mixup`: the
environments in a random cyclic order, each mixed with the next one,

    x_i = lam_i x_a + (1 - lam_i) x_b
    loss = mean_i [lam_i CE(f(x_i), y_a) + (1 - lam_i) CE(f(x_i), y_b)]

for the pairs (a, b) = (perm[i], perm[i+1 mod E]) of DomainBed's `random_pairs_of_minibatches`,
lam_i ~ Beta(alpha, alpha) one per pair (alpha 0.2, DomainBed's mixup_alpha). Permutation and
lambdas come from the step's key. The mixing is of the model inputs (after preprocessing), and
the E mixed minibatches go through one forward pass: DomainBed predicts each apart, which is
the same for networks without BatchNorm (MNIST_CNN's GroupNorm is per example).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jtl.errors import JtlError
from jtl.methods.base import METHODS
from jtl.methods.multidomain import MultiDomain, split_envs


def pairs_and_lambdas(key: jax.Array, envs: int, alpha: float
                      ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(a, b, lam): environment a of pair i mixed with b at weight lam (each (E,))."""
    k_perm, k_lam = jax.random.split(key)
    perm = jax.random.permutation(k_perm, envs)
    lam = jax.random.beta(k_lam, alpha, alpha, (envs,))
    return perm, jnp.roll(perm, -1), lam


def mix(x: jax.Array, a: jax.Array, b: jax.Array, lam: jax.Array) -> jax.Array:
    """Inputs (E, n, ...) -> mixed minibatches (E, n, ...)."""
    w = lam.reshape(-1, *([1] * (x.ndim - 1)))
    return w * x[a] + (1 - w) * x[b]


@METHODS.register("mixup")
@dataclasses.dataclass(frozen=True)
class Mixup(MultiDomain):
    method_name = "mixup"
    alpha: float = 0.2  # Beta(alpha, alpha) for the mixing weight (DomainBed's mixup_alpha)

    def __post_init__(self) -> None:
        if self.alpha <= 0:
            raise JtlError(f"method.alpha must be > 0, got {self.alpha}")

    def loss_with_state(self, model, state, batch, key, progress):
        src, envs = batch["source"], len(state["envs"])
        if not isinstance(src["x"], jax.Array) or not jnp.issubdtype(src["x"].dtype,
                                                                     jnp.floating):
            raise JtlError("method=mixup mixes float model inputs; this model reads "
                           "token ids or several fields")
        x, y = split_envs((src["x"], src["y"]), src["domain"], envs)
        a, b, lam = pairs_and_lambdas(key, envs, self.alpha)
        mixed = mix(x, a, b, lam)
        logits = model.head(model.features(mixed.reshape(-1, *x.shape[2:])))
        logits = logits.reshape(envs, -1, logits.shape[-1])
        ce = optax.softmax_cross_entropy_with_integer_labels
        per_pair = lam * ce(logits, y[a]).mean(-1) + (1 - lam) * ce(logits, y[b]).mean(-1)
        return per_pair.mean(), {"mixup_lambda": lam.mean()}, state
