"""Domain confusion: how well a linear classifier tells source from target features.

Protocol (Ben-David et al. 2007; Ganin et al. 2016), with two deliberate choices:

* Held-out error only. Both domains are subsampled to the same size n, each is split in
  halves; a logistic regression on standardized features (scaler fit on the training half)
  is trained on one half of both domains and scored on the other. The training error of a
  classifier on high-dimensional features is ~0 for *any* two samples, so it would read as
  "maximally different"; the held-out error does not.
* err = balanced held-out error, clipped to [0, 0.5]; PAD = 2 (1 - 2 err) in [0, 2]. A
  classifier worse than chance means "indistinguishable" (PAD 0), not a negative distance.

PAD reaches 2 as soon as the held-out error is 0, which separable deep features often are, so
two more numbers keep resolving differences there: the held-out domain accuracy, and the
domain-confusion loss of Tzeng et al. (2015), the cross-entropy of the classifier's held-out
probabilities against the uniform target [1/2, 1/2]:

    confusion_loss = mean_i -1/2 (log p_i + log (1 - p_i)),   p_i = P(source | x_i).

It equals log 2 ~ 0.693 for a fully confused classifier and grows with its confidence.

The 95% CI of PAD comes from a stratified bootstrap of the held-out predictions (each domain's
correctness indicators resampled separately, no retraining): it covers the sampling noise of
the test half, not of the classifier fit.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from jtl.errors import JtlError
from jtl.measures.base import MEASURES, MeasureContext, MeasureValues, as_features


def _held_out_scores(
    fs: np.ndarray, ft: np.ndarray, seed: int, max_samples: int | None, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """Decision values z (log-odds of 'source') on the held-out halves of source and target."""
    fs, ft = as_features(fs, "source features"), as_features(ft, "target features")
    if fs.shape[1] != ft.shape[1]:
        raise JtlError(f"source and target features differ in width ({fs.shape[1]} vs "
                       f"{ft.shape[1]}); measure the same layer on both domains")
    n = min(len(fs), len(ft)) if max_samples is None else min(len(fs), len(ft), max_samples)
    if n < 4:
        raise JtlError(f"domain classifier needs at least 4 samples per domain, got {n}")
    rng = np.random.default_rng(seed)
    fs = fs[rng.permutation(len(fs))[:n]]
    ft = ft[rng.permutation(len(ft))[:n]]
    half = n // 2
    x_train = np.concatenate([fs[:half], ft[:half]])
    y_train = np.concatenate([np.ones(half), np.zeros(half)])
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit(scaler.transform(x_train), y_train)
    z_s = clf.decision_function(scaler.transform(fs[half:]))
    z_t = clf.decision_function(scaler.transform(ft[half:]))
    return z_s, z_t


def domain_classifier_accuracy(
    fs: np.ndarray, ft: np.ndarray, seed: int = 0, max_samples: int | None = 2000, c: float = 1.0
) -> float:
    """Balanced held-out accuracy of a logistic regression telling source (fs) from target (ft)."""
    z_s, z_t = _held_out_scores(fs, ft, seed, max_samples, c)
    return float(0.5 * (np.mean(z_s > 0) + np.mean(z_t <= 0)))


def _pad(err: np.ndarray | float) -> np.ndarray:
    return 2.0 * (1.0 - 2.0 * np.clip(err, 0.0, 0.5))


def proxy_a_distance(
    fs: np.ndarray,
    ft: np.ndarray,
    seed: int = 0,
    n_boot: int = 1000,
    max_samples: int | None = 2000,
    c: float = 1.0,
) -> dict[str, float]:
    """PAD with a bootstrap 95% CI, held-out domain accuracy and confusion loss (see module doc).

    `max_samples` caps each domain (before halving); `c` is the inverse L2 strength of the
    logistic regression.
    """
    if n_boot < 1:
        raise JtlError(f"n_boot must be >= 1, got {n_boot}")
    z_s, z_t = _held_out_scores(fs, ft, seed, max_samples, c)
    wrong_s, wrong_t = (z_s <= 0).astype(np.float64), (z_t > 0).astype(np.float64)
    err = 0.5 * (wrong_s.mean() + wrong_t.mean())
    rng = np.random.default_rng([seed, 1])
    boot_s = wrong_s[rng.integers(0, len(wrong_s), (n_boot, len(wrong_s)))].mean(1)
    boot_t = wrong_t[rng.integers(0, len(wrong_t), (n_boot, len(wrong_t)))].mean(1)
    lo, hi = np.percentile(_pad(0.5 * (boot_s + boot_t)), [2.5, 97.5])
    # -log p = softplus(-z), -log(1-p) = softplus(z): exact even where p rounds to 0 or 1.
    z = np.concatenate([z_s, z_t])
    confusion = float(np.mean(0.5 * (np.logaddexp(0.0, -z) + np.logaddexp(0.0, z))))
    return {
        "pad": float(_pad(err)),
        "pad_ci_low": float(lo),
        "pad_ci_high": float(hi),
        "domain_acc": float(1.0 - err),
        "confusion_loss": confusion,
        "pad_n_test": len(z_s),
    }


@MEASURES.register("pad")
def pad_measure(ctx: MeasureContext, n_boot: int = 1000, max_samples: int | None = 2000,
                c: float = 1.0) -> MeasureValues:
    """Proxy A-distance between source and target features of the measured layer."""
    fs, ft = ctx.need("pad", "source_features", "target_features")
    return dict(proxy_a_distance(fs, ft, ctx.seed, n_boot=n_boot, max_samples=max_samples, c=c))
