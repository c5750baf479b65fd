"""IRMv1 (Arjovsky et al. 2019), as DomainBed's `IRM`: per-environment risks plus the squared
gradient of each risk with respect to a dummy classifier scale w = 1.0,

    loss = mean_e R_e + weight_t * mean_e (dR_e^odd/dw * dR_e^even/dw),   R_e^h(w) = CE(w * logits)

the square estimated without bias as the product of the gradients on the environment's two
halves (even and odd examples, DomainBed's `_irm_penalty`). The penalty is 0 exactly when the
scale is already optimal for every environment's risk, i.e. the one classifier is optimal
in each. weight_t = 1 for the first `anneal_steps` updates, then `weight` (DomainBed's
irm_lambda 1e2, irm_penalty_anneal_iters 500), counted in the method state.

Difference from DomainBed: at the switch DomainBed resets Adam (new moments); jtl's optimizer
belongs to the trainer and is not reset, so Adam's second moments carry the pre-switch
gradient scale into the first updates after it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jtl.methods.base import METHODS, cross_entropy
from jtl.methods.multidomain import AnnealedPenalty


def irm_penalty(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """One environment's unbiased squared scale-gradient: (n, C), (n,) -> scalar."""
    def grad(z: jax.Array, y: jax.Array) -> jax.Array:
        return jax.grad(lambda w: cross_entropy(z * w, y))(jnp.float32(1.0))

    return grad(logits[::2], labels[::2]) * grad(logits[1::2], labels[1::2])


@METHODS.register("irm")
@dataclasses.dataclass(frozen=True)
class IRM(AnnealedPenalty):
    method_name = "irm"
    weight: float = 100.0  # lambda after the anneal (irm_lambda); anneal_steps 500 inherited

    def risk_and_penalty(self, logits, labels):
        return (jnp.mean(jax.vmap(cross_entropy)(logits, labels)),
                jnp.mean(jax.vmap(irm_penalty)(logits, labels)))
