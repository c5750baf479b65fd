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
from collections.abc import Iterator
from typing import ClassVar

import jax
import numpy as np
from flax import nnx

from jtl.domains.pp import FIELD_GROUPS
from jtl.errors import JtlError
from jtl.methods.base import METHODS, Boundary, Method
from jtl.methods.source_free import batch_norms


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
    n = len(split)
    sums: dict | None = None
    for m, stats in batch_moments(graphdef, params, split, batch_size, "adabn"):
        part = {p: (m * mean, m * (var + mean ** 2)) for p, (mean, var) in stats.items()}
        sums = part if sums is None else {p: (sums[p][0] + a, sums[p][1] + b)
                                          for p, (a, b) in part.items()}
    return with_statistics(params, {p: (s1 / n, np.maximum(s2 / n - (s1 / n) ** 2, 0.0))
                                    for p, (s1, s2) in (sums or {}).items()})


def batch_moments(graphdef: nnx.GraphDef, params: dict, split, batch_size: int, method: str
                  ) -> Iterator[tuple[int, dict[tuple, tuple[np.ndarray, np.ndarray]]]]:
    """(batch size m, {BatchNorm path: (mean, biased var) of its input in that batch}) for
    consecutive batches of `split`, each layer normalising with its batch's statistics (a
    `model.train()` pass), in float64."""
    pp = dataclasses.replace(split.pp, augment=())
    fields = {f: split.fields[f] for f in FIELD_GROUPS[pp.field]}
    paths = batch_norms(graphdef, params)
    if not paths:
        raise JtlError(f"method={method}: the network has no BatchNorm layer (use a model with "
                       f"norm=batch, e.g. model=lenet_tllib); {method} would change nothing")
    moments = _moments_fn(graphdef, pp)
    for start in range(0, len(split), batch_size):
        batch = {f: a[start:start + batch_size] for f, a in fields.items()}
        stats = jax.device_get(moments(params, batch))
        yield len(next(iter(batch.values()))), {
            p: (np.float64(mean), np.float64(var)) for p, (mean, var) in zip(paths, stats,
                                                                              strict=True)}


def with_statistics(params: dict, stats: dict[tuple, tuple[np.ndarray, np.ndarray]]) -> dict:
    """A copy of `params` whose BatchNorm layers at the paths of `stats` hold its (mean, var)."""
    out = jax.tree_util.tree_map(lambda a: a, params)
    for path, (mean, var) in stats.items():
        node = out
        for k in path:
            node = node[k]
        node["mean"] = np.asarray(mean, np.float32)
        node["var"] = np.asarray(var, np.float32)
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


__all__ = ["AdaBN", "batch_moments", "target_statistics", "with_statistics"]
