"""NTG's paired t-interval and verdicts, and the shared mean_ci against t-table values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.measures.ntg import negative_transfer_gap
from jtl.measures.stats import mean_ci

T_975 = {2: 4.302652729911275, 4: 2.7764451051977987}  # Student-t 97.5% quantiles by df


def test_mean_ci_matches_the_t_table() -> None:
    x = [0.91, 0.93, 0.90, 0.95, 0.92]
    mean, low, high = mean_ci(x)
    half = T_975[4] * np.std(x, ddof=1) / math.sqrt(5)
    assert mean == pytest.approx(0.922, rel=1e-12)
    assert (low, high) == pytest.approx((0.922 - half, 0.922 + half), rel=1e-12)


def test_mean_ci_edge_cases() -> None:
    assert mean_ci([0.5]) == (0.5, -math.inf, math.inf)
    assert mean_ci([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2, 0.2))
    with pytest.raises(JtlError):
        mean_ci([])


def test_negative_transfer_when_the_transfer_runs_are_worse_for_every_seed() -> None:
    transfer = {0: 0.30, 1: 0.35, 2: 0.32}
    baseline = {2: 0.21, 0: 0.20, 1: 0.22}  # order must not matter: pairs are by seed
    res = negative_transfer_gap(transfer, baseline)
    gaps = np.array([0.10, 0.13, 0.11])
    half = T_975[2] * gaps.std(ddof=1) / math.sqrt(3)
    assert res["ntg_mean"] == pytest.approx(gaps.mean(), rel=1e-12)
    assert res["ntg_ci_low"] == pytest.approx(gaps.mean() - half, rel=1e-9)
    assert res["ntg_ci_high"] == pytest.approx(gaps.mean() + half, rel=1e-9)
    assert res["ntg_n"] == 3
    assert res["ntg_verdict"] == "negative transfer"


def test_positive_and_inconclusive_verdicts() -> None:
    base = {0: 0.30, 1: 0.35, 2: 0.32}
    better = {0: 0.20, 1: 0.22, 2: 0.21}
    assert negative_transfer_gap(better, base)["ntg_verdict"] == "positive"
    mixed = {0: 0.25, 1: 0.40, 2: 0.32}
    assert negative_transfer_gap(mixed, base)["ntg_verdict"] == "inconclusive"


def test_one_seed_is_inconclusive() -> None:
    res = negative_transfer_gap({4: 0.5}, {4: 0.1})
    assert res["ntg_mean"] == pytest.approx(0.4)
    assert (res["ntg_ci_low"], res["ntg_ci_high"]) == (-math.inf, math.inf)
    assert res["ntg_verdict"] == "inconclusive"


def test_unpaired_seeds_are_named() -> None:
    with pytest.raises(JtlError, match=r"\[2\] have no target_only run.*\[5\] have no transfer"):
        negative_transfer_gap({0: 0.1, 1: 0.2, 2: 0.3}, {0: 0.1, 1: 0.2, 5: 0.3})
