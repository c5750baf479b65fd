"""The t-SNE plot is a real PNG, written atomically, from subsampled points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from jtl.errors import JtlError
from jtl.measures.base import MEASURES, MeasureContext

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def one_openmp_thread():
    """Barnes-Hut t-SNE with OpenMP threads on a busy 2-core runner is ~10x slower."""
    import sklearn.manifold  # noqa: F401  (threadpoolctl only limits libraries already loaded)

    with threadpool_limits(1, "openmp"):
        yield


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    fs, ys = rng.normal(size=(90, 6)), rng.integers(0, 3, 90)
    ft, yt = rng.normal(size=(70, 6)) + 2.0, rng.integers(0, 3, 70)
    return fs, ys, ft, yt


def test_measure_writes_a_png_into_the_run_dir(tmp_path: Path) -> None:
    fs, ys, ft, yt = data()
    ctx = MeasureContext(source_features=fs, source_labels=ys, target_features=ft,
                         target_labels=yt, run_dir=tmp_path, seed=0)
    out = MEASURES.get("tsne")(ctx, max_points=80, file="emb.png")
    png = tmp_path / "emb.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 5000  # two panels of points, not an empty canvas
    assert np.isfinite(out["tsne_kl"]) and out["tsne_kl"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.png"]  # no temp file left


def test_needs_a_run_dir_and_matching_labels(tmp_path: Path) -> None:
    fs, ys, ft, yt = data()
    ctx = MeasureContext(source_features=fs, source_labels=ys, target_features=ft,
                         target_labels=yt)
    with pytest.raises(JtlError, match="run_dir"):
        MEASURES.get("tsne")(ctx)
    from jtl.measures.tsne import plot_tsne

    with pytest.raises(JtlError, match="one label per row"):
        plot_tsne(fs, ys[:-1], ft, yt, tmp_path / "x.png")
