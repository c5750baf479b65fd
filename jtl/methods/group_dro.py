"""Group DRO (Sagawa et al. 2020, Algorithm 1), as DomainBed's `GroupDRO`: minimise a
q-weighted sum of the environments' risks, q moved toward the worst environments by
exponentiated gradient ascent at every step,

    q_e <- q_e exp(eta * R_e) / sum_e' q_e' exp(eta * R_e'),    loss = sum_e q_e R_e

(q updated first, with the risks held constant, then the loss taken under the new q, as
DomainBed does). q starts uniform (DomainBed's ones, the same after normalising) and lives in
the method state; eta = 0.01 is DomainBed's groupdro_eta.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jtl.errors import JtlError
from jtl.methods.base import METHODS
from jtl.methods.multidomain import MultiDomain, env_logits, env_risks


def update_q(q: jax.Array, risks: jax.Array, eta: float) -> jax.Array:
    """One exponentiated-gradient step of the group weights (risks not differentiated)."""
    q = q * jnp.exp(eta * jax.lax.stop_gradient(risks))
    return q / q.sum()


@METHODS.register("group_dro")
@dataclasses.dataclass(frozen=True)
class GroupDRO(MultiDomain):
    method_name = "group_dro"
    eta: float = 0.01  # step size of q's ascent (DomainBed's groupdro_eta)

    def __post_init__(self) -> None:
        if self.eta < 0:
            raise JtlError(f"method.eta must be >= 0, got {self.eta}")

    def extra_state(self, envs):
        return {"q": jnp.full((envs,), 1.0 / envs, jnp.float32)}

    def loss_with_state(self, model, state, batch, key, progress):
        logits, labels = env_logits(model, batch["source"], len(state["envs"]))
        risks = env_risks(logits, labels)
        q = update_q(state["q"], risks, self.eta)
        metrics = {"nll": risks.mean(), "q_max": q.max(),
                   **{f"q_{e}": q[e] for e in range(len(q))}}
        return jnp.dot(q, risks), metrics, {**state, "q": q}
