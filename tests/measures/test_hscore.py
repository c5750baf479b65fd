"""H-score against covariances summed sample by sample, and its invariances."""

from __future__ import annotations

import numpy as np
import pytest
from measure_arrays import F6, Y6

from jtl.measures.hscore import hscore

F, Y = F6, Y6


def hscore_by_loops(f: np.ndarray, y: np.ndarray) -> float:
    """Bao et al. (2019): tr(cov(f)^-1 cov(E[f|y])), with an explicit inverse (full rank here)."""
    n = len(f)
    mu = sum(f[i] for i in range(n)) / n
    cov_f = sum(np.outer(f[i] - mu, f[i] - mu) for i in range(n)) / n
    class_mean = {c: sum(f[i] for i in range(n) if y[i] == c) / list(y).count(c) for c in set(y)}
    cov_g = sum(np.outer(class_mean[y[i]] - mu, class_mean[y[i]] - mu) for i in range(n)) / n
    return float(np.trace(np.linalg.inv(cov_f) @ cov_g))


def test_matches_the_paper_formula() -> None:
    assert hscore(F, Y) == pytest.approx(hscore_by_loops(F, Y), rel=1e-10)
    y2 = np.array([1, 0, 1, 0, 0, 1])
    assert hscore(F, y2) == pytest.approx(hscore_by_loops(F, y2), rel=1e-10)


def test_invariant_to_invertible_linear_maps_of_the_features() -> None:
    a = np.array([[2.0, 0.3, 0.0], [0.0, 1.0, -1.0], [0.5, 0.0, 3.0]])
    assert hscore(F @ a + 4.0, Y) == pytest.approx(hscore(F, Y), rel=1e-9)


def test_one_hot_label_features_reach_the_maximum_k_minus_one() -> None:
    """f = onehot(y): E[f|y] = f, so H = rank(cov f) = K - 1 (cov is singular: pinv needed)."""
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 3])
    assert hscore(np.eye(4)[y], y) == pytest.approx(3.0, rel=1e-9)


def test_label_free_features_score_less_than_label_features() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    informative = np.eye(3)[y] + 0.3 * rng.normal(size=(300, 3))
    noise = rng.normal(size=(300, 3))
    assert hscore(noise, y) < 0.1 < 1.0 < hscore(informative, y) <= 2.0 + 1e-9
