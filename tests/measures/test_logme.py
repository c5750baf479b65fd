"""LogME's fixed point against a direct numerical maximisation of the Gaussian evidence."""

from __future__ import annotations

import numpy as np
import pytest
from measure_arrays import F6, Y6
from scipy import optimize

from jtl.measures.logme import log_max_evidence, logme


def max_evidence_direct(f: np.ndarray, y: np.ndarray) -> float:
    """max over alpha, beta of log N(y; 0, F F^T / alpha + I / beta), per sample: no SVD."""
    n, ff = len(y), f @ f.T

    def neg(log_ab: np.ndarray) -> float:
        # -log N(y; 0, cov) by Cholesky: scipy.stats' logpdf (eigh + pseudo-inverse) is
        # ~1000x slower here and its rounding noise kept Nelder-Mead going for ~40,000 calls.
        alpha, beta = np.exp(log_ab)
        c = np.linalg.cholesky(ff / alpha + np.eye(n) / beta)
        z = np.linalg.solve(c, y)
        return 0.5 * z @ z + np.log(np.diag(c)).sum() + 0.5 * n * np.log(2 * np.pi)

    best = optimize.minimize(neg, np.zeros(2), method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 10000})
    return -best.fun / n



def test_single_target_matches_direct_maximisation() -> None:
    y = (Y6 == 1).astype(float)
    value, alpha, beta = log_max_evidence(F6, y)
    assert value == pytest.approx(max_evidence_direct(F6, y), abs=1e-7)
    assert alpha > 0 and beta > 0


def test_logme_is_the_class_average_of_per_sample_evidence() -> None:
    expected = np.mean([max_evidence_direct(F6, np.equal(Y6, k).astype(float)) for k in range(3)])
    assert logme(F6, Y6) == pytest.approx(expected, abs=1e-7)


def test_more_features_than_samples() -> None:
    """D > N: log|A| must count the D - N zero eigenvalues of F^T F (log alpha each)."""
    f = np.random.default_rng(1).normal(size=(6, 10))
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    assert log_max_evidence(f, y)[0] == pytest.approx(max_evidence_direct(f, y), abs=1e-6)


def test_informative_features_score_higher() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    informative = np.eye(3)[y] + 0.2 * rng.normal(size=(200, 3))
    noise = rng.normal(size=(200, 3))
    assert logme(informative, y) > logme(noise, y) + 0.5
