"""Confidence intervals shared by the measures and `jtl.report`: one implementation only.

Seeds are few (3-10), so intervals for a mean use Student's t, not the normal approximation.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import stats

from jtl.errors import JtlError


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
