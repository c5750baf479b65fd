"""Confidence intervals shared by the measures and `jtl.report`: one implementation only.

Seeds are few (3-10), so intervals for a mean use Student's t, not the normal approximation.
The t interval knows nothing of a quantity's range: with 3 seeds at 0.99, 1.0 and 0.95 its
upper end passes 1. `mean_ci` returns it raw (what is stored in report.csv and
measures.json, so the numbers can be recomputed); tables and plots show it clipped to the
quantity's bounds (`bounds`, `clip_ci`), since no accuracy is above 1.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import stats

from jtl.errors import JtlError

UNIT = (0.0, 1.0)
DIFFERENCE = (-1.0, 1.0)
# Bounded quantities by the last component of their key (`target/test/accuracy` -> accuracy,
# `backbone/blocks/1/pad` -> pad): accuracies and errors lie in [0, 1], PAD = 2 (1 - 2 err)
# in [0, 2] (pad.py clips err to [0, 0.5]), differences of errors (NTG, adaptation gain) in
# [-1, 1].
_BOUNDS: dict[str, tuple[float, float]] = {
    "accuracy": UNIT, "domain_acc": UNIT, "pad": (0.0, 2.0), "pad_ci_low": (0.0, 2.0),
    "pad_ci_high": (0.0, 2.0),
}
_SUFFIX_BOUNDS: tuple[tuple[str, tuple[float, float]], ...] = (
    ("_accuracy", UNIT), ("_err", UNIT),
)
_DIFFERENCES = ("ntg_mean", "ntg_ci_low", "ntg_ci_high", "ntg_gap", "ntg_adaptation_gain",
                "ntg_zero_label")


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the two-sided Student-t interval for the mean of `values`.

    One value gives (v, -inf, inf): a single seed says nothing about the spread. Zero spread
    gives the degenerate interval (mean, mean, mean).
    """
    x = np.asarray(list(values), dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise JtlError("mean_ci needs at least one value; check that the runs report this metric")
    if not 0.0 < level < 1.0:
        raise JtlError(f"confidence level must lie in (0, 1), got {level}")
    mean = float(x.mean())
    n = x.size
    if n == 1:
        return mean, -np.inf, np.inf
    sem = float(x.std(ddof=1)) / np.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2.0, df=n - 1)) * sem
    return mean, float(mean - half), float(mean + half)


def bounds(metric: str) -> tuple[float, float] | None:
    """The range a metric's values live in, or None when it is unbounded or unknown."""
    name = metric.rsplit("/", 1)[-1]
    if name in _BOUNDS:
        return _BOUNDS[name]
    for suffix, b in _SUFFIX_BOUNDS:
        if name.endswith(suffix):
            return b
    if name.startswith(_DIFFERENCES) and not name.endswith("_n"):  # _n: a count of seeds
        return DIFFERENCE
    return None


def clip_ci(low: float, high: float, metric: str) -> tuple[float, float]:
    """An interval cut to `bounds(metric)` for display; unbounded metrics pass unchanged.

    A single seed's infinite interval stays infinite: it says "no interval", not "the whole
    range"."""
    b = bounds(metric)
    if b is None or not (np.isfinite(low) and np.isfinite(high)):
        return low, high
    return max(low, b[0]), min(high, b[1])
