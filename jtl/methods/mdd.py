"""MDD, Margin Disparity Discrepancy (Zhang et al. 2019, "Bridging theory and algorithm for
domain adaptation"): an adversarial classifier f' measures how much a second hypothesis can
agree with the head f on source yet disagree with it on target; the features shrink that gap.

With yhat = argmax of the head's logits (a constant: f is not trained by this term) and
p' = softmax(f'(features)), the discrepancy with the paper's margin gamma (`margin`) is

    D = margin * E_s log p'[yhat_s] + E_t log(1 - p'[yhat_t])

    loss = CE(source) + weight * transfer,   transfer = -D
         = CE(source) + weight * (margin * CE(f'_s, yhat_s) - E_t log(1 - p'[yhat_t]))

f' (`adv/`, a linear head like `head/`: MDD's f' ranges over the same hypothesis class) sees
the features through a gradient reversal layer: it descends `transfer`, i.e. *maximises* D,
while the backbone receives -coeff * weight * d transfer / d features, i.e. minimises D.
coeff = grl_max * (2 / (1 + exp(-gamma p)) - 1) over progress p (`schedule: dann`), TLlib's
warm-start GRL with its ceiling hi = 0.1 (`gamma` here is DANN's ramp rate, as in dann.yaml).
log(1 - p') is computed as a log-sum-exp over the other classes, which is finite without
TLlib's 1e-6 shift.

With `standardize` (default), f' reads the features standardised per dimension over the joint
[source; target] batch, (f - mean) / sqrt(var + 1e-5): the normalisation of TLlib's BatchNorm
bottleneck (there in front of both heads; jtl's heads read the neck's output, which is that
bottleneck only with `neck.bottleneck_dim`), without
running statistics (f' is never evaluated) or affine (f''s linear layer absorbs it). For one
batch this is an affine map of f, so f' stays linear in the features, but its logits no longer
grow when the backbone scales them up. On raw features the backbone ascends
margin * CE(f'_s, yhat_s), unbounded in the feature scale, and LeNet has no normalisation to
stop it: every digits run diverged (seed 0: `feature_norm` 20 -> 40 -> 5e4 by step 403; ~20
throughout with grl_max 0). Standardised, the scale direction gets zero gradient.

f' is TLlib's adversarial head, Linear(1024)-ReLU-Linear (`adv_hidden`; 0 = a linear f',
`adv/kernel`, which a run saved before the key existed reopens with: `rundir.MIGRATIONS`).
With a linear f' the backbone won the game on the digits network (BN bottleneck): f' ended up
disagreeing with f on source (its CE 2-14) and agreeing on target, and the source task went
with it (source val 96% at step 250 -> 53-63% at 2000); with the wide f' source val stayed at
97% (experiments/digits_da/README.md). TLlib's dropout in f' is not replicated.

Defaults are TLlib's (`tllib/alignment/mdd.py`, digits recipe): margin 4, weight 1,
grl_max 0.1, standardize (its BN), adv_hidden 1024.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jtl.errors import JtlError
from jtl.methods.adversarial import check_schedule, gradient_reversal, reversal_coeff
from jtl.methods.base import METHODS
from jtl.methods.transductive import Transductive


def log1m_softmax(logits: jax.Array, label: jax.Array) -> jax.Array:
    """log(1 - softmax(logits)[label]) per row, as logsumexp over the other classes minus
    logsumexp over all: exact, and finite however confident the row is."""
    others = jnp.where(jax.nn.one_hot(label, logits.shape[-1], dtype=bool), -jnp.inf, logits)
    return jax.nn.logsumexp(others, -1) - jax.nn.logsumexp(logits, -1)


def batch_standardize(f: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Each feature to zero mean, unit variance over the batch (BatchNorm's training-mode
    normalisation, PyTorch's eps): the output does not change when f is scaled or shifted per
    feature, so neither can the gradient through it point that way."""
    mean = f.mean(0)
    return (f - mean) * jax.lax.rsqrt(jnp.mean(jnp.square(f - mean), 0) + eps)


def disparity(logits_s: jax.Array, adv_s: jax.Array, logits_t: jax.Array, adv_t: jax.Array,
              margin: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(transfer = -D, source CE of f' against yhat_s, target mean log(1 - p'[yhat_t]))."""
    yhat_s = jnp.argmax(jax.lax.stop_gradient(logits_s), -1)
    yhat_t = jnp.argmax(jax.lax.stop_gradient(logits_t), -1)
    src = optax.softmax_cross_entropy_with_integer_labels(adv_s, yhat_s).mean()
    tgt = log1m_softmax(adv_t, yhat_t).mean()
    return margin * src - tgt, src, tgt


@METHODS.register("mdd")
@dataclasses.dataclass(frozen=True)
class MDD(Transductive):
    margin: float = 4.0
    grl_max: float = 0.1
    gamma: float = 10.0
    schedule: str = "dann"
    standardize: bool = True
    adv_hidden: int = 1024

    def __post_init__(self) -> None:
        if not self.margin > 0 or self.grl_max < 0:
            raise JtlError(f"method.margin must be > 0 and method.grl_max >= 0, "
                           f"got {self.margin} and {self.grl_max}")
        if isinstance(self.adv_hidden, bool) or not isinstance(self.adv_hidden, int) or \
                self.adv_hidden < 0:
            raise JtlError(f"method.adv_hidden={self.adv_hidden!r}: 0 (a linear f') or a width")
        check_schedule(self.schedule)

    def modules(self, feature_dim, num_classes, rngs):
        if not self.adv_hidden:
            return {"adv": nnx.Linear(feature_dim, num_classes, rngs=rngs)}
        return {"adv": nnx.Sequential(nnx.Linear(feature_dim, self.adv_hidden, rngs=rngs),
                                      jax.nn.relu,
                                      nnx.Linear(self.adv_hidden, num_classes, rngs=rngs))}

    def adaptation(self, model, out, key, progress):
        coeff = self.grl_max * reversal_coeff(self.schedule, self.gamma, progress)
        f = jnp.concatenate([out.f_s, out.f_t])
        h = gradient_reversal(f, coeff)
        adv = model.adv(batch_standardize(h) if self.standardize else h)
        n = out.f_s.shape[0]
        transfer, src, tgt = disparity(out.logits_s, adv[:n], out.logits_t, adv[n:],
                                       self.margin)
        metrics = {"mdd_loss": transfer, "adv_source_ce": src, "adv_target_log1mp": tgt,
                   "lambda": coeff, "feature_norm": jnp.linalg.norm(f, axis=-1).mean()}
        return self.weight * transfer, metrics
