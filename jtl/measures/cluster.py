"""Target evaluation without target labels: k-means on target features, NMI and ARI.

Unsupervised transfer ends in an unsupervised target task: the encoder's target features are
clustered by k-means (scikit-learn, k = the number of target classes, `n_init` restarts, on
the features as they are) and the clusters are scored against the held-out labels with
normalised mutual information and the adjusted Rand index. The labels only *score* the
clustering; nothing is fitted on them.

`cluster_probe_accuracy` is a separate, label-using number: a logistic regression on
standardized features fitted on one stratified half of the samples and scored on the other
(the linear-evaluation protocol of Chen et al. 2020, on the split the measure reads).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from jtl.errors import JtlError
from jtl.measures.base import (
    MEASURES,
    MeasureContext,
    MeasureValues,
    as_features,
    as_labels,
    subsample,
)


def cluster_scores(features: np.ndarray, labels: np.ndarray, seed: int = 0,
                   n_clusters: int | None = None, n_init: int = 10) -> dict[str, float]:
    """NMI and ARI of k-means clusters of `features` (N, ...) against `labels` (N,)."""
    x = as_features(features, "features")
    y = as_labels(labels, len(x))
    k = int(n_clusters or y.max() + 1)
    if len(x) < k:
        raise JtlError(f"cluster: {len(x)} samples cannot form {k} clusters")
    pred = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(x)
    return {"nmi": float(normalized_mutual_info_score(y, pred)),
            "ari": float(adjusted_rand_score(y, pred))}


def probe_accuracy(features: np.ndarray, labels: np.ndarray, seed: int = 0,
                   c: float = 1.0) -> float:
    """Held-out accuracy of a linear probe fitted on one stratified half, scored on the other."""
    x = as_features(features, "features")
    y = as_labels(labels, len(x))
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=seed,
                                              stratify=y)
    scaler = StandardScaler().fit(x_tr)
    clf = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x_tr), y_tr)
    return float(clf.score(scaler.transform(x_te), y_te))


@MEASURES.register("cluster")
def cluster(ctx: MeasureContext, n_clusters: int | None = None, n_init: int = 10,
            probe_c: float = 1.0, max_samples: int | None = 2000) -> MeasureValues:
    """k-means NMI / ARI of the target features, and (label-using) linear-probe accuracy."""
    (ft, yt) = ctx.need("cluster", "target_features", "target_labels")
    idx = subsample(np.random.default_rng(ctx.seed), len(ft), max_samples)
    ft, yt = np.asarray(ft)[idx], np.asarray(yt)[idx]
    scores = cluster_scores(ft, yt, ctx.seed, n_clusters, n_init)
    return {"cluster_nmi": scores["nmi"], "cluster_ari": scores["ari"],
            "cluster_probe_accuracy": probe_accuracy(ft, yt, ctx.seed, probe_c),
            "cluster_n": len(ft)}
