"""AdaBN (Li et al. 2016, "Revisiting Batch Normalization for Practical Domain Adaptation"):
the source network with every batch-norm layer's statistics recomputed on the target domain.

Statistics only and source-free: no gradient step, no source data. The run starts from a
source model (`init_from=<run dir>` or `pretrain=<source experiment>`) and, at its last step,
replaces each BatchNorm's running mean and variance with the moments of that layer's input
over the whole target train split (unlabeled). As PyTorch's `model.train()` passes with
`momentum=None` (the usual reimplementation), the layers normalise with their batch's
statistics while the moments are collected, in batches of `batch_size`; the moments are the
exact population ones over all batches (mean and E[x^2] weighted by batch size), not a running
average. A network without BatchNorm is refused: AdaBN would change nothing.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import numpy as np
from flax import nnx

from jtl.domains.pp import FIELD_GROUPS
from jtl.errors import JtlError
from jtl.methods.base import METHODS, Boundary, Method


@METHODS.register("adabn")
@dataclasses.dataclass(frozen=True)
class AdaBN(Method):
    uses = frozenset({"target/x"})
    trainable: ClassVar[str | None] = None  # statistics only
    batch_size: int = 500  # examples per statistics pass (the layers see batch statistics)

    def loss(self, model, batch, key, progress):
        raise JtlError("adabn takes no gradient step (statistics only)")

    def on_boundary(self, params, state, ctx: Boundary):
        if ctx.step != ctx.total:
            return params, state
        return (target_statistics(ctx.graphdef, params, ctx.roles.target.train,
                                  self.batch_size), state)


def target_statistics(graphdef: nnx.GraphDef, params: dict, split, batch_size: int) -> dict:
    """`params` with every BatchNorm's mean/var the moments of its input over `split`."""
    pp = dataclasses.replace(split.pp, augment=())
    fields = {f: split.fields[f] for f in FIELD_GROUPS[pp.field]}
    n = len(split)
    paths = [path for path, m in nnx.merge(graphdef, params).iter_modules()
             if isinstance(m, nnx.BatchNorm)]
    if not paths:
        raise JtlError("method=adabn: the network has no BatchNorm layer (use a model with "
                       "norm=batch, e.g. model=lenet_tllib); AdaBN would change nothing")
    moments = _moments_fn(graphdef, pp)
    sums: dict | None = None
    for start in range(0, n, batch_size):
        batch = {f: a[start:start + batch_size] for f, a in fields.items()}
        m = len(next(iter(batch.values())))
        stats = jax.device_get(moments(params, batch))
        part = {p: (m * np.float64(mean), m * (np.float64(var) + np.float64(mean) ** 2))
                for p, (mean, var) in zip(paths, stats, strict=True)}
        sums = part if sums is None else {p: (sums[p][0] + a, sums[p][1] + b)
                                          for p, (a, b) in part.items()}
    out = jax.tree_util.tree_map(lambda a: a, params)
    for path, (s1, s2) in (sums or {}).items():
        mean = s1 / n
        node = out
        for k in path:
            node = node[k]
        node["mean"] = np.asarray(mean, np.float32)
        node["var"] = np.asarray(np.maximum(s2 / n - mean ** 2, 0.0), np.float32)
    return out


def _moments_fn(graphdef: nnx.GraphDef, pp):
    @jax.jit
    def moments(params, fields):
        model = nnx.merge(graphdef, params)
        norms = [(path, m) for path, m in model.iter_modules() if isinstance(m, nnx.BatchNorm)]
        for _, m in norms:
            m.use_running_average, m.momentum = False, 0.0  # running stats := batch stats
        model(pp(fields))
        return [(m.mean.value, m.var.value) for _, m in norms]

    return moments


__all__ = ["AdaBN", "target_statistics"]
