"""LogME, the Logarithm of Maximum Evidence (You et al., ICML 2021).

For each target class k, the one-hot column y_k (N,) is modelled as a Bayesian linear
regression on the features F (N, D): w ~ N(0, alpha^-1 I), y = F w + N(0, beta^-1). The
evidence (marginal likelihood) p(y | F, alpha, beta) = N(y; 0, FF^T / alpha + I / beta) is
maximised over alpha and beta with MacKay's fixed-point iteration, where A = alpha I + beta F^T F,
m = beta A^-1 F^T y and lambda_i are the eigenvalues of F^T F:

    gamma = sum_i beta lambda_i / (alpha + beta lambda_i)
    alpha <- gamma / m^T m,    beta <- (N - gamma) / ||F m - y||^2

    log p = N/2 log beta + D/2 log alpha - N/2 log 2 pi
            - beta/2 ||F m - y||^2 - alpha/2 m^T m - 1/2 log |A|.

LogME = mean over classes of (max log p) / N: per-sample normalised so scores of target sets
of different sizes compare. All terms come from one SVD of F, so each iteration is O(min(N, D)).
Higher predicts better transfer.
"""

from __future__ import annotations

import numpy as np

from jtl.measures.base import (
    MEASURES,
    MeasureContext,
    MeasureValues,
    as_features,
    as_labels,
)


def _evidence_terms(alpha: float, beta: float, lam: np.ndarray, z: np.ndarray,
                    res_perp: float) -> tuple[float, float, float, np.ndarray]:
    """gamma, m^T m, ||F m - y||^2 and alpha + beta lambda, in the SVD basis (z = U^T y)."""
    d = alpha + beta * lam
    gamma = float(np.sum(beta * lam / d))
    mtm = float(beta**2 * np.sum(lam * z**2 / d**2))
    res = res_perp + float(np.sum((alpha / d) ** 2 * z**2))
    return gamma, mtm, res, d


def log_max_evidence(
    features: np.ndarray, y: np.ndarray, max_iter: int = 1000, tol: float = 1e-10
) -> tuple[float, float, float]:
    """(max log evidence / N, alpha, beta) for one real-valued target y (N,)."""
    f = as_features(features, "features")
    y = np.asarray(y, dtype=np.float64)
    n, dim = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    lam = s**2
    z = u.T @ y
    res_perp = max(float(y @ y - z @ z), 0.0)  # part of y outside the span of F's columns
    tiny = np.finfo(np.float64).tiny
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        gamma, mtm, res, _ = _evidence_terms(alpha, beta, lam, z, res_perp)
        new_alpha, new_beta = gamma / max(mtm, tiny), (n - gamma) / max(res, tiny)
        # When F says nothing about y the optimum is alpha -> inf (w = 0); stop where the
        # prior already dwarfs the data (beta lambda / alpha < 1e-12) instead of overflowing.
        new_alpha = min(new_alpha, 1e12 * new_beta * max(float(lam.max()), tiny))
        done = (abs(new_alpha - alpha) <= tol * alpha) and (abs(new_beta - beta) <= tol * beta)
        alpha, beta = new_alpha, new_beta
        if done:
            break
    _, mtm, res, d = _evidence_terms(alpha, beta, lam, z, res_perp)
    # log|A|: the D - rank(F) zero eigenvalues of F^T F contribute log(alpha) each.
    log_det_a = float(np.sum(np.log(d))) + (dim - len(lam)) * np.log(alpha)
    evidence = (n / 2 * np.log(beta) + dim / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                - beta / 2 * res - alpha / 2 * mtm - log_det_a / 2)
    return float(evidence / n), alpha, beta


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of features (N, D) for class labels (N,): mean per-class normalised log evidence."""
    f = as_features(features, "features")
    y = as_labels(labels, len(f))
    onehot = np.eye(y.max() + 1)[y]
    return float(np.mean([log_max_evidence(f, onehot[:, k])[0] for k in range(onehot.shape[1])]))


@MEASURES.register("logme")
def logme_measure(ctx: MeasureContext) -> MeasureValues:
    """LogME of the source model's features on target data."""
    f, y = ctx.need("logme", "target_features", "target_labels")
    return {"logme": logme(f, y)}
