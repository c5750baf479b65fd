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

`relabel_every: k` is the classic offline variant (Lee 2013's and Zou et al. 2018's rounds):
yhat_i and m_i of every target train example are computed once per k steps over the whole
split, by the model of that step in evaluation mode, and held fixed in between, in the
method's state (`Method.init_state`, updated by the boundary hook; checkpointed and resumed
with the parameters); a step looks its examples up by their `index`. Null (the default):
the per-batch pseudo-labels above.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jtl.errors import JtlError
from jtl.methods.base import METHODS, Boundary, accuracy, cross_entropy
from jtl.methods.transductive import Transductive, forward


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
    uses = frozenset({"source/x", "source/y", "target/x", "target/index"})
    threshold: float = 0.9
    relabel_every: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise JtlError(f"method.threshold must be in (0, 1], got {self.threshold}")
        k = self.relabel_every
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise JtlError(f"method.relabel_every={k!r}: null or an integer >= 1")

    @property
    def boundary_every(self) -> int | None:
        return self.relabel_every

    def init_state(self, params: Any, ctx: Boundary) -> Any:
        return None if self.relabel_every is None else self.relabel(params, ctx)

    def relabel(self, params: Any, ctx: Boundary) -> dict[str, Any]:
        """Pseudo-label and confidence mask of every target train example (the model of this
        step, evaluation mode, the split's evaluation pipeline)."""
        import numpy as np

        probs = jax.nn.softmax(ctx.logits(params, ctx.roles.target.train), -1)
        return {"label": np.asarray(jnp.argmax(probs, -1), np.int32),
                "confident": np.asarray(jnp.max(probs, -1) >= self.threshold, np.float32)}

    def on_boundary(self, params, state, ctx: Boundary):
        if state is None or ctx.step % self.relabel_every or ctx.step == ctx.total:
            return params, state
        return params, self.relabel(params, ctx)

    def loss_with_state(self, model, state, batch, key, progress):
        if state is None:
            return (*self.loss(model, batch, key, progress), state)
        out = forward(model, batch)
        y, idx = batch["source"]["y"], batch["target"]["index"]
        ce = cross_entropy(out.logits_s, y)
        mask = state["confident"][idx]
        pl = jnp.mean(mask * optax.softmax_cross_entropy_with_integer_labels(
            out.logits_t, state["label"][idx]))
        return ce + self.weight * pl, {"cls_loss": ce, "train_acc": accuracy(out.logits_s, y),
                                       "pseudo_loss": pl, "pseudo_frac": jnp.mean(mask)}, state

    def adaptation(self, model, out, key, progress):
        pl, frac = pseudo_label_loss(out.logits_t, self.threshold)
        return self.weight * pl, {"pseudo_loss": pl, "pseudo_frac": frac}
