"""H-score (Bao et al., ICIP 2019): how well features separate the target classes.

    H(f) = tr( cov(f)^+ cov(E[f | y]) )

where cov(E[f|y]) is the covariance, over samples, of each sample's class-mean feature
(i.e. the between-class covariance weighted by class frequency). It is the one-layer
classification log-likelihood of Fisher's discriminant, and lies in [0, min(D, K - 1)].
The pseudo-inverse keeps it defined for rank-deficient features (D > N, or collinear units);
both covariances use the same 1/N, which cancels. Higher predicts better transfer.
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

# Eigenvalues of cov(f) below this fraction of the largest count as zero in the pseudo-inverse.
RTOL = 1e-10


def hscore(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score of features (N, D) for labels (N,)."""
    f = as_features(features, "features")
    y = as_labels(labels, len(f))
    f = f - f.mean(0)
    class_means = np.zeros((y.max() + 1, f.shape[1]))
    np.add.at(class_means, y, f)
    class_means /= np.bincount(y)[:, None]
    g = class_means[y]
    cov_f = f.T @ f / len(f)
    cov_g = g.T @ g / len(f)  # g has mean 0 because f does
    return float(np.trace(np.linalg.pinv(cov_f, rtol=RTOL, hermitian=True) @ cov_g))


@MEASURES.register("hscore")
def hscore_measure(ctx: MeasureContext) -> MeasureValues:
    """H-score of the source model's features on target data."""
    f, y = ctx.need("hscore", "target_features", "target_labels")
    return {"hscore": hscore(f, y)}
