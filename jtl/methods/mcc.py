"""MCC, Minimum Class Confusion (Jin et al. 2020): make target predictions confuse fewer classes.

On the target batch (B samples, C classes), with temperature-scaled probabilities
p = softmax(logits / T):

    w_i = B (1 + exp(-H(p_i))) / sum_k (1 + exp(-H(p_k)))     (certain samples count more)
    C_jj' = sum_i w_i p_ij p_ij'                               (class correlation, C x C)
    C~_jj' = C_jj' / sum_j'' C_j''j'                           (each column sums to 1)
    L_MCC = (sum_jj' C~_jj' - sum_j C~_jj) / C                  (the off-diagonal mass)

    loss = CE(source) + weight * L_MCC

Temperature rescaling keeps confident predictions from hiding their confusion; the weights
w are constants for the gradient (stop_gradient), as in the paper's code. L_MCC is 0 when
every sample puts its mass on one class (no two classes co-occur) and (C - 1) / C for
uniform predictions. Defaults are TLlib's (`tllib/self_training/mcc.py`): T = 2.5, weight 1.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jtl.errors import JtlError
from jtl.methods.base import METHODS
from jtl.methods.transductive import Transductive, entropy


def class_confusion(logits: jax.Array, temperature: float) -> jax.Array:
    """L_MCC of a batch of target logits (B, C) at `temperature`."""
    b, c = logits.shape
    scaled = logits / temperature
    p = jax.nn.softmax(scaled, -1)
    w = 1.0 + jnp.exp(-jax.lax.stop_gradient(entropy(scaled)))
    w = b * w / jnp.sum(w)
    corr = (p * w[:, None]).T @ p
    corr = corr / jnp.sum(corr, 0, keepdims=True)
    return (jnp.sum(corr) - jnp.trace(corr)) / c


@METHODS.register("mcc")
@dataclasses.dataclass(frozen=True)
class MCC(Transductive):
    temperature: float = 2.5

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise JtlError(f"method.temperature must be > 0, got {self.temperature}")

    def adaptation(self, model, out, key, progress):
        mcc = class_confusion(out.logits_t, self.temperature)
        return self.weight * mcc, {"mcc_loss": mcc}
