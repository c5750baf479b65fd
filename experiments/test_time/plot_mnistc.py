"""The MNIST-C figures, from completed runs only:
- `online_stream.png`: online accuracy along the test stream (cumulative over the examples
  seen, mean over seeds) of tent and bn_adapt, read from each run's metrics.jsonl
  (`train/online_acc` per logging window: the predictions made before each update), beside
  the source model on the same examples in the same order (mnistc_source.py's windows);
- `gains.png`: each method's paired gain over source_only per corruption with its 95% CI
  (summarize_mnistc.py's numbers), the average over corruptions at the bottom.

    python experiments/test_time/plot_mnistc.py [runs dir] [results dir] [corruption...]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import summarize_mnistc as sm

from jtl import rundir

COLOURS = {"source_only": "0.4", "bn_adapt": "tab:blue", "tent": "tab:red",
           "adabn": "tab:green", "t3a": "tab:purple", "shot": "tab:orange"}


def cumulative(windows: list[float], total: int, window: int) -> np.ndarray:
    """Running accuracy after each window; the last window holds what remains of `total`."""
    sizes = np.array([min(window, total - i * window) for i in range(len(windows))], float)
    return np.cumsum(np.asarray(windows) * sizes) / np.cumsum(sizes)


def online_curves(root: Path, corruption: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: (examples seen, mean cumulative accuracy over seeds)} for the complete seeds."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    src = root / corruption / "source_only.json"
    if not src.exists():
        return out
    row = json.loads(src.read_text())
    if row.get("window") is None:  # written before any online run of it completed
        return out
    window = int(row["window"])
    for m in sm.ONLINE:
        runs = [root / corruption / m / f"seed{s}" for s in sm.SEEDS]
        runs = [r for r in runs if rundir.completed_summary(r) is not None]
        if not runs:
            continue
        total = int(rundir.completed_summary(runs[0])["online/examples"])
        curves = []
        for r in runs:
            acc = [x["train/online_acc"] for x in rundir.read_metrics(r)
                   if "train/online_acc" in x]
            curves.append(cumulative(acc, total, window))
        x = np.minimum(np.arange(1, len(curves[0]) + 1) * window, total)
        out[m] = (x, 100 * np.mean(curves, axis=0))
        if "source_only" not in out:
            src_curves = [cumulative(row[f"stream{s}"], total, window) for s in sm.SEEDS
                          if f"stream{s}" in row]
            out["source_only"] = (x, 100 * np.mean(src_curves, axis=0))
    return out


def plot_stream(root: Path, corruptions: list[str], dest: Path) -> None:
    shown = [c for c in corruptions if online_curves(root, c)]
    if not shown:
        return
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, c in zip(axes.flat, shown, strict=False):
        for name, (x, y) in online_curves(root, c).items():
            ax.plot(x, y, label=name, color=COLOURS[name])
        ax.set_title(c)
        ax.set_xlabel("test examples seen")
        ax.set_ylabel("online accuracy so far (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("MNIST-C, online (one pass, batches of 128, each scored before its update); "
                 "mean of 3 seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(dest, dpi=80)
    plt.close(fig)


def plot_gains(numbers: dict, dest: Path) -> None:
    per = numbers["per_corruption"]
    names = [c for c in sm.CORRUPTIONS if c in per] + ["average"]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.5))
    offsets = np.linspace(-0.3, 0.3, len(sm.METHODS))
    for off, m in zip(offsets, sm.METHODS, strict=True):
        ys, ds, los, his = [], [], [], []
        for i, c in enumerate(names):
            p = numbers["average"].get(m) if c == "average" else per[c].get(m)
            if not p or len(p["seeds"]) < 2:
                continue
            ys.append(i + off)
            ds.append(p["diff"])
            los.append(p["diff"] - p["lo"])
            his.append(p["hi"] - p["diff"])
        if ys:
            setting = "online" if m in sm.ONLINE else "offline"
            ax.errorbar(ds, ys, xerr=[los, his], fmt="o", ms=3, capsize=2, lw=1,
                        color=COLOURS[m], label=f"{m} ({setting})")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy - source_only (points), paired by seed, 95% CI")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(dest, dpi=80)
    plt.close(fig)


def main(argv: list[str]) -> None:
    root = Path(argv[0] if argv else "experiments/test_time/runs_mnistc")
    out = Path(argv[1] if len(argv) > 1 else "experiments/test_time/results")
    corruptions = argv[2:] or ["shot_noise", "motion_blur", "fog", "zigzag", "canny_edges",
                               "brightness"]
    out.mkdir(parents=True, exist_ok=True)
    plot_stream(root, corruptions, out / "online_stream.png")
    plot_gains(sm.tables(sm.collect(root))[1], out / "gains.png")


if __name__ == "__main__":
    main(sys.argv[1:])
