"""LEEP against its defining sums written as explicit loops, and its special cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.measures.leep import leep
from jtl.measures.nce import nce

# 6 target samples, 3 source classes, target labels in {0, 1}.
THETA = np.array([
    [0.7, 0.2, 0.1],
    [0.6, 0.3, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.2, 0.6],
    [0.3, 0.3, 0.4],
    [0.1, 0.6, 0.3],
])
Y = np.array([0, 0, 1, 1, 0, 1])


def leep_by_loops(theta: np.ndarray, y: np.ndarray) -> float:
    """Nguyen et al. (2020), Eq. (1)-(2): joint, conditional, then mean log EEP."""
    n, n_src = theta.shape
    labels = sorted(set(y.tolist()))
    joint = {(t, z): sum(theta[i][z] for i in range(n) if y[i] == t) / n
             for t in labels for z in range(n_src)}
    p_z = {z: sum(joint[(t, z)] for t in labels) for z in range(n_src)}
    total = 0.0
    for i in range(n):
        eep = sum(joint[(y[i], z)] / p_z[z] * theta[i][z] for z in range(n_src))
        total += math.log(eep)
    return total / n


def test_matches_the_paper_formula() -> None:
    assert leep(THETA, Y) == pytest.approx(leep_by_loops(THETA, Y), rel=1e-12)


def test_label_values_do_not_matter() -> None:
    assert leep(THETA, np.where(Y == 1, 7, 3)) == pytest.approx(leep(THETA, Y), rel=1e-12)


def test_one_hot_probabilities_reduce_to_the_empirical_log_likelihood() -> None:
    """Hard predictions z_i: LEEP = mean log P(y_i | z_i) = NCE."""
    z = np.array([0, 0, 1, 2, 1, 0])  # z=0 holds y (0, 0, 1), z=1 holds (1, 0), z=2 holds (1)
    onehot = np.eye(3)[z]
    expected = np.mean(np.log([2 / 3, 2 / 3, 1 / 2, 1.0, 1 / 2, 1 / 3]))
    assert leep(onehot, Y) == pytest.approx(expected, rel=1e-12)
    assert leep(onehot, Y) == pytest.approx(nce(z, Y), rel=1e-12)


def test_uniform_probabilities_give_minus_label_entropy() -> None:
    """An uninformative source model predicts P(y) for everyone: LEEP = mean log P(y_i)."""
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([3, 3, 3, 2, 2, 1]) / 6
    assert leep(np.full((6, 4), 0.25), y) == pytest.approx(np.mean(np.log(p)), rel=1e-12)


def test_perfectly_informative_source_scores_zero() -> None:
    assert leep(np.eye(3)[[0, 1, 2, 0]], np.array([2, 0, 1, 2])) == pytest.approx(0.0, abs=1e-12)


def test_logits_are_rejected() -> None:
    with pytest.raises(JtlError, match="softmax"):
        leep(np.log(THETA) + 3.0, Y)
    with pytest.raises(JtlError, match="6 samples"):
        leep(THETA, Y[:5])
