"""Test-time batch-norm adaptation (Schneider et al. 2020, "Improving robustness against common
corruptions by covariate shift adaptation"; Nado et al. 2020, "Evaluating prediction-time batch
normalization"): every BatchNorm normalises target inputs with target batch statistics, mixed
with the source statistics by a prior strength N:

    mu = N / (N + n) mu_source + n / (N + n) mu_target,   likewise the variance,

n the target batch size; N = 0 (the default) is pure test-batch statistics, TENT's "BN"
baseline. Statistics only and source-free, from a source model (`init_from`), no gradient.

In the online setting (`online:`) the trainer scores each stream batch's predictions made with
that batch's own statistics: this method is exactly that. jtl's offline evaluation runs in
evaluation mode (running statistics), which cannot normalise each test batch by itself, so
here, at the last step, each BatchNorm's running statistics become the mixture above with the
target side the *average batch statistics* over consecutive batches of `batch_size` examples
of target train (each layer normalising its batch with that batch's statistics while they are
collected). Difference from per-batch prediction: every test example is normalised by the
same expected batch statistics instead of its own batch's; the expected batch variance is
the within-batch one, (n - 1) / n of the population's for i.i.d. batches, which AdaBN (exact
population moments, no prior) does not shrink.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jtl.errors import JtlError
from jtl.methods.adabn import batch_moments, with_statistics
from jtl.methods.base import METHODS, Boundary, Method


@METHODS.register("bn_adapt")
@dataclasses.dataclass(frozen=True)
class BNAdapt(Method):
    uses = frozenset({"target/x"})
    trainable: ClassVar[str | None] = None  # statistics only
    batch_size: int = 128  # n: target examples per batch of statistics
    prior: float = 0.0  # N: weight of the source statistics, in examples

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.prior < 0:
            raise JtlError(f"method=bn_adapt: batch_size >= 1 and prior >= 0, got "
                           f"{self.batch_size} and {self.prior}")

    def loss(self, model, batch, key, progress):
        raise JtlError("bn_adapt takes no gradient step (statistics only)")

    def on_boundary(self, params, state, ctx: Boundary):
        if ctx.step != ctx.total:
            return params, state
        return mixed_statistics(ctx.graphdef, params, ctx.roles.target.train,
                                self.batch_size, self.prior), state


def mixed_statistics(graphdef, params: dict, split, batch_size: int, prior: float) -> dict:
    """`params` with each BatchNorm's mean/var the prior-weighted mixture of its source
    statistics and the size-weighted average of its target batches' statistics."""
    total, sums = 0, {}
    for m, stats in batch_moments(graphdef, params, split, batch_size, "bn_adapt"):
        total += m
        for p, (mean, var) in stats.items():
            a, b = sums.get(p, (0.0, 0.0))
            sums[p] = (a + m * mean, b + m * var)
    w = prior / (prior + batch_size)

    def source(p: tuple, key: str):
        node = params
        for k in p:
            node = node[k]
        return node[key]

    return with_statistics(params, {p: (w * source(p, "mean") + (1 - w) * a / total,
                                        w * source(p, "var") + (1 - w) * b / total)
                                    for p, (a, b) in sums.items()})
