"""NTG's paired t-interval and verdicts, the adaptation gain and zero-label NTG of runs
without target labels, and the shared mean_ci / bounds against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.measures import ntg
from jtl.measures.ntg import adaptation_gain, chance_error, negative_transfer_gap, zero_label_gap
from jtl.measures.stats import bounds, clip_ci, mean_ci

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


def test_adaptation_gain_is_source_only_error_minus_the_runs() -> None:
    source_only = {0: 0.40, 1: 0.42, 2: 0.39}
    dann = {0: 0.30, 1: 0.35, 2: 0.31}  # lower error: adaptation helped
    res = adaptation_gain(dann, source_only)
    gains = np.array([0.10, 0.07, 0.08])
    half = T_975[2] * gains.std(ddof=1) / math.sqrt(3)
    assert res["ntg_adaptation_gain_mean"] == pytest.approx(gains.mean(), rel=1e-12)
    assert res["ntg_adaptation_gain_ci_low"] == pytest.approx(gains.mean() - half, rel=1e-9)
    assert res["ntg_adaptation_gain_verdict"] == ntg.HELPS
    assert adaptation_gain(source_only, dann)["ntg_adaptation_gain_verdict"] == ntg.HURTS
    assert not any(k.startswith("ntg_m") for k in res)  # never reported as an NTG
    with pytest.raises(JtlError, match=r"\[2\] have no source_only run"):
        adaptation_gain(dann, {0: 0.4, 1: 0.4})


def test_zero_label_ntg_is_against_chance() -> None:
    assert chance_error(10) == pytest.approx(0.9)
    with pytest.raises(JtlError):
        chance_error(1)
    res = zero_label_gap({0: 0.30, 1: 0.35, 2: 0.32}, chance_error(10))
    assert res["ntg_zero_label_mean"] == pytest.approx(np.mean([0.30, 0.35, 0.32]) - 0.9)
    assert res["ntg_zero_label_verdict"] == ntg.POSITIVE
    worse = zero_label_gap({0: 0.95, 1: 0.97, 2: 0.96}, 0.9)
    assert worse["ntg_zero_label_verdict"] == ntg.NEGATIVE


def test_bounded_quantities_and_clipped_intervals() -> None:
    assert bounds("target/test/accuracy") == bounds("selected/val/target/test/accuracy") == (0, 1)
    assert bounds("backbone/blocks/1/pad") == bounds("pad_ci_high") == (0, 2)
    assert bounds("ntg_baseline_err") == (0, 1)
    assert bounds("ntg_mean") == bounds("ntg_adaptation_gain_ci_low") == (-1, 1)
    assert bounds("ntg_adaptation_gain_n") is None and bounds("logme") is None
    _, low, high = mean_ci([0.99, 1.0, 0.93])
    assert high > 1.0  # the t interval knows no bounds ...
    assert clip_ci(low, high, "target/test/accuracy") == (low, 1.0)  # ... the display does
    assert clip_ci(-0.3, 2.4, "pad") == (0.0, 2.0)
    assert clip_ci(-0.3, 2.4, "logme") == (-0.3, 2.4)
    assert clip_ci(-math.inf, math.inf, "pad") == (-math.inf, math.inf)  # one seed: no interval
