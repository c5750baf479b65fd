"""What the source-free methods (tent, bn_adapt, shot, t3a) share: the network's features and
logits over a whole split, its batch-norm layers, and information maximisation.

These methods start from a trained source model (`init_from`, `pretrain=`) and read only
unlabeled target data (`uses` has no label and no source), so they live on the few things a
model offers without labels: its prediction entropy, its features and its normalisation
statistics.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jtl.errors import JtlError
from jtl.methods.transductive import entropy

# Parameter paths of the affine part of a normalisation layer as jtl's models name them
# (`.../norm/scale`, `.../bn/bias`); `batch_norm_affine` checks they are BatchNorm's.
NORM_AFFINE = r"(.*/)?(norm|bn)/(scale|bias)"


def batch_norms(graphdef: nnx.GraphDef, params: Any) -> list[tuple]:
    """Module paths of the network's BatchNorm layers, in tree order."""
    return [path for path, m in nnx.iter_modules(nnx.merge(graphdef, params))
            if isinstance(m, nnx.BatchNorm)]


def batch_norm_affine(graphdef: nnx.GraphDef, params: Any, trainable: str, method: str
                      ) -> None:
    """Refuse a network where `trainable` selects anything but BatchNorm scale/bias, or
    nothing: such a method would then adapt another layer than it claims (e.g. GroupNorm's
    `norm/scale` in mnist_cnn), or nothing at all."""
    from jtl.models.base import param_paths

    norms = {"/".join(map(str, p)) for p in batch_norms(graphdef, params)}
    picked = [p for p in param_paths(params) if re.fullmatch(trainable, p)]
    other = [p for p in picked if p.rsplit("/", 1)[0] not in norms]
    if not norms or other:
        what = f"{other[0]} is not a BatchNorm's" if other else "it has no BatchNorm layer"
        raise JtlError(f"method={method} adapts BatchNorm scale and bias only and {what}: use "
                       "a model with batch norm (model=lenet_tllib, or model.norm=batch)")


@functools.lru_cache(maxsize=8)
def _embed_fn(graphdef: nnx.GraphDef) -> Any:
    def embed(params, fields, pp):
        model = nnx.merge(graphdef, params)
        f = model.features(pp(fields))
        return f, model.head(f)

    return jax.jit(embed, static_argnums=2)


def embed(graphdef: nnx.GraphDef, params: Any, split: Any, batch_size: int = 1000
          ) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), logits (N, C)) over a whole split, in evaluation mode (running
    statistics), under the split's evaluation pipeline: what a boundary hook reads of the
    target (`Boundary.logits` gives the logits alone)."""
    from jtl.train.evaluate import padded_batches  # jtl.train imports the methods

    fn = _embed_fn(graphdef)
    feats, logits = [], []
    for fields, _, mask in padded_batches(split, batch_size, labels=False):
        f, z = jax.device_get(fn(params, fields, split.pp))
        feats.append(f[mask > 0])
        logits.append(z[mask > 0])
    return np.concatenate(feats), np.concatenate(logits)


def information_maximisation(logits: jax.Array, eps: float = 1e-5
                             ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(IM loss, mean entropy, diversity) of a batch, SHOT's L_ent + L_div:

        mean_i H(p_i) - H(mean_i p_i),   H(q) = -sum_c q_c log(q_c + eps)  for the mean,

    confident predictions (low first term) that still use every class (high second term).
    `eps` is SHOT's inside the log of the marginal."""
    ent = entropy(logits).mean()
    marginal = jax.nn.softmax(logits, -1).mean(0)
    div = -jnp.sum(marginal * jnp.log(marginal + eps))
    return ent - div, ent, div


__all__ = ["NORM_AFFINE", "batch_norm_affine", "batch_norms", "embed",
           "information_maximisation"]
