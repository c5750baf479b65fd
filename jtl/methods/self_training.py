"""Self-training with confident pseudo-labels (Lee 2013; threshold and normalisation of FixMatch,
Sohn et al. 2020).

    loss = CE(source) + weight * (1/B) sum_i m_i CE(logits_i, yhat_i)

over the target batch of size B, with yhat_i = argmax p_i and m_i = [max p_i >= threshold], both
computed under stop_gradient: the pseudo-labels are targets, not something the loss may move.
As in FixMatch the masked sum is divided by the batch size, not by the confident count, so
the term grows as more target samples become confident instead of giving the first few
confident samples the full weight (dividing by sum m_i made one confident sample weigh as
much as a whole batch). With none confident the term is exactly 0. Target labels are never
read (`uses` has no `target/y`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jtl.errors import JtlError
from jtl.methods.base import METHODS
from jtl.methods.transductive import Transductive


def pseudo_label_loss(logits: jax.Array, threshold: float) -> tuple[jax.Array, jax.Array]:
    """(1/B) sum_i m_i CE_i against confident argmax pseudo-labels, and the confident fraction."""
    probs = jax.nn.softmax(jax.lax.stop_gradient(logits), -1)
    pseudo = jnp.argmax(probs, -1)
    mask = (jnp.max(probs, -1) >= threshold).astype(logits.dtype)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, pseudo)
    return jnp.mean(mask * ce), jnp.mean(mask)


@METHODS.register("self_training")
@dataclasses.dataclass(frozen=True)
class SelfTraining(Transductive):
    threshold: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise JtlError(f"method.threshold must be in (0, 1], got {self.threshold}")

    def adaptation(self, model, out, key, progress):
        pl, frac = pseudo_label_loss(out.logits_t, self.threshold)
        return self.weight * pl, {"pseudo_loss": pl, "pseudo_frac": frac}
