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

from jtl.methods.base import METHODS
from jtl.methods.multidomain import AnnealedPenalty, env_risks


def risk_variance(risks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, variance with 1/E) of the per-environment risks (E,)."""
    mean = risks.mean()
    return mean, jnp.mean((risks - mean) ** 2)


@METHODS.register("vrex")
@dataclasses.dataclass(frozen=True)
class VREx(AnnealedPenalty):
    method_name = "vrex"
    weight: float = 10.0  # lambda after the anneal (vrex_lambda); anneal_steps 500 inherited

    def risk_and_penalty(self, logits, labels):
        return risk_variance(env_risks(logits, labels))
