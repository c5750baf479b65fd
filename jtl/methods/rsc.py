"""RSC, representation self-challenging (Huang et al. 2020), as DomainBed's `RSC`: mute the
features the classifier leans on most, for the examples where muting hurts most, and train
on what is left.

    g      = d (sum_b logit_b[y_b]) / d f           per-example gradient of the true-class logit
    mask_f = g < pct_(1 - f_drop)(g over each example's features)    (mutes the top f_drop)
    change = p[y](f) - p[y](f * mask_f)                the true-class probability lost
    mask_b = change < pct_(1 - b_drop)(change over the batch)  (spares all but the top b_drop)
    loss   = CE(head(f * (mask_f OR mask_b)), y)

Masks are constants (computed under stop_gradient; numpy's linear percentile, as DomainBed's
np.percentile). f_drop = b_drop = 1/3 (rsc_f_drop_factor, rsc_b_drop_factor). One batch of
every environment concatenated, as DomainBed; it needs no environment split, so it runs with
one source as well.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jtl.errors import JtlError
from jtl.methods.base import METHODS, Method, accuracy, cross_entropy


def rsc_mask(head, f: jax.Array, y: jax.Array, f_drop: float, b_drop: float) -> jax.Array:
    """The 0/1 mask (B, D) of RSC's Equations 2-3 and Section 3.3, a constant."""
    f = jax.lax.stop_gradient(f)
    onehot = jax.nn.one_hot(y, head(f[:1]).shape[-1])
    g = jax.grad(lambda z: jnp.sum(head(z) * onehot))(f)
    mask_f = (g < jnp.percentile(g, (1 - f_drop) * 100, axis=1, keepdims=True)).astype(f.dtype)
    p = jnp.sum(jax.nn.softmax(head(f), -1) * onehot, -1)
    p_muted = jnp.sum(jax.nn.softmax(head(f * mask_f), -1) * onehot, -1)
    change = p - p_muted
    mask_b = (change < jnp.percentile(change, (1 - b_drop) * 100)).astype(f.dtype)[:, None]
    return jnp.maximum(mask_f, mask_b)


@METHODS.register("rsc")
@dataclasses.dataclass(frozen=True)
class RSC(Method):
    uses = frozenset({"source/x", "source/y"})
    f_drop: float = 1 / 3  # fraction of each example's features muted (rsc_f_drop_factor)
    b_drop: float = 1 / 3  # fraction of the batch whose features are muted (rsc_b_drop_factor)

    def __post_init__(self) -> None:
        if not (0 <= self.f_drop < 1 and 0 <= self.b_drop < 1):
            raise JtlError(f"method.f_drop and method.b_drop must be in [0, 1), got "
                           f"{self.f_drop} and {self.b_drop}")

    def loss(self, model, batch, key, progress):
        x, y = batch["source"]["x"], batch["source"]["y"]
        f = model.features(x)
        mask = rsc_mask(model.head, f, y, self.f_drop, self.b_drop)
        logits = model.head(f * mask)
        return cross_entropy(logits, y), {"train_acc": accuracy(logits, y),
                                          "kept": mask.mean()}
