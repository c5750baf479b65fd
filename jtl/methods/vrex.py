"""V-REx (Krueger et al. 2021), as DomainBed's `VREx`: the mean of the environments' risks
plus the (biased) variance of them,

    loss = mean_e R_e + weight_t * mean_e (R_e - mean R)^2

so that no environment is fit at the expense of another. weight_t = 1 for the first
`anneal_steps` updates, then `weight` (DomainBed's vrex_lambda 1e1,
vrex_penalty_anneal_iters 500), counted in the method state. As with `irm`, DomainBed resets
Adam at the switch and jtl does not (the optimizer is the trainer's).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jtl.errors import JtlError
from jtl.methods.base import METHODS
from jtl.methods.multidomain import MultiDomain, annealed, env_logits, env_risks


def risk_variance(risks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, variance with 1/E) of the per-environment risks (E,)."""
    mean = risks.mean()
    return mean, jnp.mean((risks - mean) ** 2)


@METHODS.register("vrex")
@dataclasses.dataclass(frozen=True)
class VREx(MultiDomain):
    method_name = "vrex"
    weight: float = 10.0  # lambda after the anneal (DomainBed's vrex_lambda)
    anneal_steps: int = 500  # updates at weight 1 first (vrex_penalty_anneal_iters)

    def __post_init__(self) -> None:
        if self.weight < 0 or self.anneal_steps < 0:
            raise JtlError(f"method.weight and method.anneal_steps must be >= 0, got "
                           f"{self.weight} and {self.anneal_steps}")

    def extra_state(self, envs):
        return {"update_count": jnp.zeros((), jnp.int32)}

    def loss_with_state(self, model, state, batch, key, progress):
        logits, labels = env_logits(model, batch["source"], len(state["envs"]))
        mean, penalty = risk_variance(env_risks(logits, labels))
        w = annealed(self.weight, self.anneal_steps, state["update_count"])
        metrics = {"nll": mean, "penalty": penalty, "penalty_weight": w}
        return mean + w * penalty, metrics, {**state, "update_count": state["update_count"] + 1}
