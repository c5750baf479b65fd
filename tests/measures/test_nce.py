"""NCE = -H(Y|Z) against a per-source-class entropy loop, and its special cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jtl.measures.nce import nce

Z = np.array([0, 0, 1, 2, 0, 1])
Y = np.array([0, 0, 1, 1, 0, 1])


def nce_by_loops(z: np.ndarray, y: np.ndarray) -> float:
    """-sum_z P(z) H(Y | Z = z), the chain-rule form (Tran et al. 2019 use the joint form)."""
    n = len(z)
    h = 0.0
    for zv in set(z.tolist()):
        ys = [y[i] for i in range(n) if z[i] == zv]
        h_given = -sum((ys.count(t) / len(ys)) * math.log(ys.count(t) / len(ys))
                       for t in set(ys))
        h += len(ys) / n * h_given
    return -h


def test_matches_conditional_entropy_loop() -> None:
    assert nce(Z, Y) == pytest.approx(nce_by_loops(Z, Y), rel=1e-12)
    rng = np.random.default_rng(0)
    z, y = rng.integers(0, 4, 40), rng.integers(0, 3, 40)
    assert nce(z, y) == pytest.approx(nce_by_loops(z, y), rel=1e-12)


def test_hand_value() -> None:
    """Every source class of Z holds one target label in Y: NCE = 0."""
    assert nce(Z, Y) == pytest.approx(0.0, abs=1e-12)
    y = np.array([0, 1, 1, 1, 0, 1])  # Z=0 now holds (0, 1, 0): H = h(1/3); Z=1 holds (1, 1)
    h = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    assert nce(Z, y) == pytest.approx(-0.5 * h, rel=1e-12)


def test_zero_when_target_is_a_function_of_source() -> None:
    z = np.array([0, 1, 2, 3, 1, 2, 0, 3])
    assert nce(z, z % 2) == pytest.approx(0.0, abs=1e-12)


def test_minus_label_entropy_when_independent() -> None:
    y = np.array([0, 0, 1, 1, 1, 2])
    p = np.array([2, 3, 1]) / 6
    assert nce(np.zeros(6, int), y) == pytest.approx(np.sum(p * np.log(p)), rel=1e-12)
