"""cluster: k-means NMI / ARI against held-out labels, and a separate linear-probe accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.measures.base import MeasureContext, run_measures
from jtl.measures.cluster import cluster_scores, probe_accuracy


def blobs(separation: float, n: int = 60, k: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n // k)
    centres = separation * rng.normal(size=(k, 5))
    return centres[y] + rng.normal(size=(len(y), 5)), y


def test_separated_clusters_score_one_and_noise_scores_near_zero():
    x, y = blobs(separation=20.0)
    s = cluster_scores(x, y)
    assert s["nmi"] == pytest.approx(1.0) and s["ari"] == pytest.approx(1.0)
    assert probe_accuracy(x, y) == 1.0
    noise = np.random.default_rng(1).normal(size=x.shape)
    s0 = cluster_scores(noise, y)
    assert s0["nmi"] < 0.2 and abs(s0["ari"]) < 0.1


def test_label_names_do_not_matter():
    x, y = blobs(separation=2.0)
    renamed = np.array([7, 3, 5])[y]
    assert cluster_scores(x, y) == cluster_scores(x, renamed)


def test_measure_through_the_registry():
    x, y = blobs(separation=20.0, n=90)
    ctx = MeasureContext(target_features=x, target_labels=y, seed=0)
    v = run_measures(ctx, {"cluster": {"name": "cluster", "max_samples": 60}})
    assert v["cluster_n"] == 60
    assert v["cluster_nmi"] == pytest.approx(1.0)
    assert v["cluster_probe_accuracy"] == 1.0
    with pytest.raises(JtlError, match="cannot form"):
        cluster_scores(x[:2], y[:2], n_clusters=3)
    with pytest.raises(JtlError, match="needs target_features"):
        run_measures(MeasureContext(), {"cluster": {}})
