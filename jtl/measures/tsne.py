"""t-SNE embedding plot of source and target features, coloured by domain and by class.

A picture, not a number: it shows whether adaptation aligned the domains class by class or
merely overlapped them (domains mixed, classes smeared). t-SNE is quadratic-ish in N, so each
domain is subsampled to half of `max_points`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jtl.errors import JtlError
from jtl.measures.base import (
    MEASURES,
    MeasureContext,
    MeasureValues,
    as_features,
    subsample,
)
from jtl.rundir import atomic_savefig


def plot_tsne(
    fs: np.ndarray,
    ys: np.ndarray,
    ft: np.ndarray,
    yt: np.ndarray,
    path: str | os.PathLike,
    seed: int = 0,
    max_points: int = 2000,
    perplexity: float = 30.0,
) -> float:
    """Write a two-panel PNG (by domain, by class) to `path`; returns t-SNE's final KL."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from sklearn.manifold import TSNE

    fs, ft = as_features(fs, "source features"), as_features(ft, "target features")
    ys, yt = np.asarray(ys).reshape(-1), np.asarray(yt).reshape(-1)
    if len(ys) != len(fs) or len(yt) != len(ft):
        raise JtlError("t-SNE: each feature array needs one label per row")
    if fs.shape[1] != ft.shape[1]:
        raise JtlError("t-SNE: source and target features differ in width; use one layer")
    rng = np.random.default_rng(seed)
    i_s = subsample(rng, len(fs), max_points // 2)
    i_t = subsample(rng, len(ft), max_points // 2)
    x = np.concatenate([fs[i_s], ft[i_t]])
    y = np.concatenate([ys[i_s], yt[i_t]])
    domain = np.concatenate([np.zeros(len(i_s)), np.ones(len(i_t))])
    if len(x) < 5:
        raise JtlError(f"t-SNE needs at least 5 points, got {len(x)}")
    # sklearn requires perplexity < n_samples; small sets get a proportionally small one.
    perplexity = min(perplexity, (len(x) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    emb = tsne.fit_transform(x)

    # A bare Figure renders with Agg and leaves pyplot's global backend and state alone.
    fig = Figure(figsize=(11, 5))
    ax_d, ax_c = fig.subplots(1, 2)
    for d, (name, colour) in enumerate([("source", "tab:blue"), ("target", "tab:red")]):
        sel = domain == d
        ax_d.scatter(emb[sel, 0], emb[sel, 1], s=4, c=colour, alpha=0.6, label=name)
    ax_d.legend(markerscale=3)
    ax_d.set_title("by domain")
    classes = np.unique(y)
    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20
                     else "nipy_spectral"]
    for k, cls in enumerate(classes):
        colour = cmap(k % cmap.N) if cmap.N <= 20 else cmap(k / max(len(classes) - 1, 1))
        for d, marker in ((0, "o"), (1, "^")):
            sel = (domain == d) & (y == cls)
            ax_c.scatter(emb[sel, 0], emb[sel, 1], s=6, color=colour, marker=marker, alpha=0.7,
                         label=str(cls) if d == 0 else None)
    if len(classes) <= 20:
        ax_c.legend(title="class", markerscale=2, fontsize="small", loc="best", ncols=2)
    ax_c.set_title("by class (o source, ^ target)")
    for ax in (ax_d, ax_c):
        ax.set_xticks([])
        ax.set_yticks([])
    atomic_savefig(fig, path)
    return float(tsne.kl_divergence_)


@MEASURES.register("tsne")
def tsne_measure(ctx: MeasureContext, max_points: int = 2000, perplexity: float = 30.0,
                 file: str = "tsne.png") -> MeasureValues:
    """Writes `<run_dir>/<file>`; reports t-SNE's KL so a bad embedding is visible in numbers."""
    fs, ys, ft, yt = ctx.need("tsne", "source_features", "source_labels", "target_features",
                              "target_labels")
    if ctx.run_dir is None:
        raise JtlError("measure 'tsne' writes a PNG into the run dir; give it a run_dir")
    kl = plot_tsne(fs, ys, ft, yt, Path(ctx.run_dir) / file, seed=ctx.seed,
                   max_points=max_points, perplexity=perplexity)
    return {"tsne_kl": kl}
