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

from jtl.errors import JtlError
from jtl.methods.base import METHODS, cross_entropy
from jtl.methods.multidomain import MultiDomain, annealed, env_logits


def irm_penalty(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """One environment's unbiased squared scale-gradient: (n, C), (n,) -> scalar."""
    def grad(z: jax.Array, y: jax.Array) -> jax.Array:
        return jax.grad(lambda w: cross_entropy(z * w, y))(jnp.float32(1.0))

    return grad(logits[::2], labels[::2]) * grad(logits[1::2], labels[1::2])


@METHODS.register("irm")
@dataclasses.dataclass(frozen=True)
class IRM(MultiDomain):
    method_name = "irm"
    weight: float = 100.0  # lambda after the anneal (DomainBed's irm_lambda)
    anneal_steps: int = 500  # updates at weight 1 first (irm_penalty_anneal_iters)

    def __post_init__(self) -> None:
        if self.weight < 0 or self.anneal_steps < 0:
            raise JtlError(f"method.weight and method.anneal_steps must be >= 0, got "
                           f"{self.weight} and {self.anneal_steps}")

    def extra_state(self, envs):
        return {"update_count": jnp.zeros((), jnp.int32)}

    def loss_with_state(self, model, state, batch, key, progress):
        logits, labels = env_logits(model, batch["source"], len(state["envs"]))
        nll = jnp.mean(jax.vmap(cross_entropy)(logits, labels))
        penalty = jnp.mean(jax.vmap(irm_penalty)(logits, labels))
        w = annealed(self.weight, self.anneal_steps, state["update_count"])
        metrics = {"nll": nll, "penalty": penalty, "penalty_weight": w}
        return nll + w * penalty, metrics, {**state, "update_count": state["update_count"] + 1}
