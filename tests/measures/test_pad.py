"""PAD's known answers (0 for one distribution, 2 for disjoint ones) and its held-out protocol."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jtl.errors import JtlError
from jtl.measures.pad import domain_classifier_accuracy, proxy_a_distance


def gauss(seed: int, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_same_distribution_gives_pad_near_zero_and_chance_accuracy() -> None:
    res = proxy_a_distance(gauss(0, 600, 10), gauss(1, 600, 10), seed=0, n_boot=300)
    assert res["pad"] < 0.2
    assert res["pad_ci_low"] == 0.0  # the interval reaches "indistinguishable"
    assert abs(res["domain_acc"] - 0.5) < 0.06
    # A confused classifier's cross-entropy against [1/2, 1/2] sits at its minimum, log 2.
    assert res["confusion_loss"] == pytest.approx(np.log(2), abs=0.03)


def test_disjoint_distributions_give_pad_two() -> None:
    res = proxy_a_distance(gauss(0, 400, 10), gauss(1, 400, 10, shift=10.0), seed=0, n_boot=300)
    assert res["pad"] == 2.0
    assert (res["pad_ci_low"], res["pad_ci_high"]) == (2.0, 2.0)
    assert res["domain_acc"] == 1.0
    assert res["confusion_loss"] > 2.0


def test_pad_grows_with_the_shift_and_ci_brackets_it() -> None:
    pads = []
    for shift in (0.2, 0.5, 1.0):
        res = proxy_a_distance(gauss(0, 600, 5), gauss(1, 600, 5, shift), seed=0, n_boot=300)
        assert res["pad_ci_low"] <= res["pad"] <= res["pad_ci_high"]
        assert res["pad"] == pytest.approx(2 * (1 - 2 * (1 - res["domain_acc"])))
        pads.append(res["pad"])
    assert pads[0] < pads[1] < pads[2] < 2.0


def test_uses_held_out_error_not_training_error() -> None:
    """With 300 dims and 50 training points per domain any two samples are separable in-sample."""
    fs, ft = gauss(0, 100, 300), gauss(1, 100, 300)
    x, y = np.concatenate([fs[:50], ft[:50]]), np.r_[np.ones(50), np.zeros(50)]
    assert LogisticRegression(max_iter=2000).fit(x, y).score(x, y) == 1.0  # training PAD = 2
    res = proxy_a_distance(fs, ft, seed=0, n_boot=200)
    assert res["pad"] < 1.0
    assert res["pad_ci_low"] == 0.0


def test_classes_are_balanced_before_splitting() -> None:
    """1000 vs 100 samples: predicting the majority domain must not look like a distance."""
    res = proxy_a_distance(gauss(0, 1000, 5), gauss(1, 100, 5), seed=0, n_boot=200)
    assert res["pad_n_test"] == 50
    assert res["pad"] < 0.5


def test_domain_classifier_accuracy_and_seed_determinism() -> None:
    fs, ft = gauss(0, 300, 4), gauss(1, 300, 4, shift=10.0)
    assert domain_classifier_accuracy(fs, ft, seed=3) == 1.0
    a = proxy_a_distance(gauss(0, 300, 4), gauss(1, 300, 4, 0.5), seed=7, n_boot=100)
    b = proxy_a_distance(gauss(0, 300, 4), gauss(1, 300, 4, 0.5), seed=7, n_boot=100)
    assert a == b


def test_mismatched_or_tiny_inputs_are_user_errors() -> None:
    with pytest.raises(JtlError, match="width"):
        proxy_a_distance(gauss(0, 50, 4), gauss(1, 50, 5))
    with pytest.raises(JtlError, match="at least 4"):
        proxy_a_distance(gauss(0, 3, 4), gauss(1, 50, 4))
