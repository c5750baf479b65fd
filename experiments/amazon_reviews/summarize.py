"""DANN's Amazon experiment beside the paper: per pair, jtl's source_only and DANN target test
accuracy over seeds, DANN's gain paired by seed with a 95% t interval (jtl.measures.stats
.mean_ci), the published DANN accuracy and jtl's distance to it; a plot of both per pair.

Only completed runs are read. The average row's gain interval is over seeds of the 12-pair
mean difference (each seed's pairs averaged first), so it is paired by seed as well.
Usage: summarize.py [runs dir] [--metric M] [--plot PNG]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jtl import rundir
from jtl.measures.stats import mean_ci

# Ganin et al. (2016), DANN on the 5000-d count vectors, as tabulated in Wilson & Cook (2020),
# Table 4 (../shared/data/text/amazon_mdsd/README.md).
PUBLISHED = {"b2d": 78.4, "b2e": 73.3, "b2k": 77.9, "d2b": 72.3, "d2e": 75.4, "d2k": 78.3,
             "e2b": 71.3, "e2d": 73.8, "e2k": 85.4, "k2b": 70.9, "k2d": 74.0, "k2e": 84.3}
METHODS = ("source_only", "dann")
SEEDS = range(5)


def accuracies(out: Path, pair: str, metric: str) -> dict[str, dict[int, float]]:
    """{method: {seed: accuracy in points}} over the pair's completed runs."""
    found: dict[str, dict[int, float]] = {}
    for method in METHODS:
        for seed in SEEDS:
            s = rundir.completed_summary(out / pair / method / f"seed{seed}")
            if s is not None and metric in s:
                found.setdefault(method, {})[seed] = 100.0 * float(s[metric])
    return found


def fmt_ci(m: float, lo: float, hi: float) -> str:
    return f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def table(out: Path, metric: str) -> tuple[list[str], dict[str, tuple]]:
    """The markdown lines and, per pair, (source_only mean, dann mean, dann CI) for the plot."""
    lines = ["| pair | seeds | published DANN | jtl source_only | jtl dann | "
             "dann - source_only [95% CI] | jtl dann - published |",
             "|---|---|---|---|---|---|---|"]
    rows: dict[str, tuple] = {}
    per_seed: dict[int, list[tuple[float, float]]] = {s: [] for s in SEEDS}
    for pair, pub in PUBLISHED.items():
        acc = accuracies(out, pair, metric)
        seeds = sorted(set(acc.get("source_only", {})) & set(acc.get("dann", {})))
        if not seeds:
            continue
        so = [acc["source_only"][s] for s in seeds]
        da = [acc["dann"][s] for s in seeds]
        for s, a, b in zip(seeds, so, da, strict=True):
            per_seed[s].append((a, b))
        dann_ci = mean_ci(da)
        rows[pair] = (mean_ci(so)[0], dann_ci)
        gap = dann_ci[0] - pub
        lines.append(f"| {pair[0].upper()}->{pair[2].upper()} | {len(seeds)} | {pub:.1f} | "
                     f"{mean_ci(so)[0]:.1f} | {dann_ci[0]:.1f} | "
                     f"{fmt_ci(*mean_ci(np.subtract(da, so)))} | {gap:+.1f} |")
    full = [s for s, v in per_seed.items() if len(v) == len(rows) and v]
    if rows and full:
        so_avg = [np.mean([a for a, _ in per_seed[s]]) for s in full]
        da_avg = [np.mean([b for _, b in per_seed[s]]) for s in full]
        pub_avg = np.mean([PUBLISHED[p] for p in rows])
        gaps = [rows[p][1][0] - PUBLISHED[p] for p in rows]
        lines.append(f"| **average ({len(rows)} pairs)** | {len(full)} | {pub_avg:.1f} | "
                     f"{np.mean(so_avg):.1f} | {np.mean(da_avg):.1f} | "
                     f"{fmt_ci(*mean_ci(np.subtract(da_avg, so_avg)))} | "
                     f"{np.mean(da_avg) - pub_avg:+.1f} (mean abs {np.mean(np.abs(gaps)):.1f}; "
                     f"{sum(abs(g) <= 2 for g in gaps)}/{len(gaps)} within 2) |")
    return lines, rows


def plot(rows: dict[str, tuple], path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(rows)
    x = np.arange(len(pairs))
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.bar(x - 0.27, [PUBLISHED[p] for p in pairs], 0.27, label="published DANN (Ganin et al.)",
           color="0.6")
    dann = np.array([rows[p][1] for p in pairs])
    err = np.abs(dann[:, 1:].T - dann[:, 0])
    ax.bar(x, dann[:, 0], 0.27, yerr=np.nan_to_num(err, posinf=0), capsize=2,
           label="jtl dann (95% CI)", color="tab:blue")
    ax.bar(x + 0.27, [rows[p][0] for p in pairs], 0.27, label="jtl source_only",
           color="tab:orange")
    ax.set_xticks(x, [f"{p[0].upper()}->{p[2].upper()}" for p in pairs])
    ax.set_ylim(60, 90)
    ax.set_ylabel("target test accuracy (%)")
    ax.set_title(f"Amazon reviews, 5000-d counts: jtl vs Ganin et al. 2016 ({metric})", fontsize=9)
    ax.legend(fontsize=8, ncol=3, loc="upper left")
    rundir.atomic_savefig(fig, path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="experiments/amazon_reviews/runs")
    p.add_argument("--metric", default="selected/val/target/test/accuracy")
    p.add_argument("--plot", default=None, help="write the per-pair plot here (PNG)")
    a = p.parse_args()
    lines, rows = table(Path(a.out), a.metric)
    print(f"`{a.metric}`, %\n")
    print("\n".join(lines))
    if a.plot and rows:
        plot(rows, Path(a.plot), a.metric)


if __name__ == "__main__":
    main()
