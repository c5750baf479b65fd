"""Cross-lingual sentiment (Webis-CLS-10, English source) on bag-of-words features: per
target language and category, source_only / dann / target_only target test accuracy over
seeds, DANN's gain over source_only and target_only's (the cost of the language gap) paired
by seed with a 95% t interval (jtl.measures.stats.mean_ci); per language the average over
its three categories (each seed's categories averaged first, so paired by seed as well),
beside Li et al. (2020)'s published averages.

Only completed runs are read; a method with no run in the directory (dann in a linear-head
study of run_minilm.sh) is left blank. Usage: summarize.py [runs dir] [--metric M]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jtl import rundir
from jtl.measures.stats import mean_ci

LANGS = ("de", "fr", "jp")
CATS = ("books", "dvd", "music")
METHODS = ("source_only", "dann", "target_only")
SEEDS = range(3)
# Li et al., IJCAI-PRICAI 2020, Table 2, averages over books/dvd/music
# (../shared/data/text/webis_cls10/README.md): the in-domain cross-lingual state of the art
# before them (CLDFA) and their multilingual-pretrained XLM-UFD (cross-domain setting).
PUBLISHED = {"CLDFA": {"de": 82.0, "fr": 83.1, "jp": 78.1},
             "XLM-UFD": {"de": 88.1, "fr": 89.3, "jp": 84.5}}


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
    if np.isnan(m):
        return "-"
    return f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def pm(values: list[float]) -> str:
    if np.isnan(values).all():
        return "-"
    m, lo, hi = mean_ci(values)
    return f"{m:.1f} ± {(hi - lo) / 2:.1f}" if np.isfinite(hi) else f"{m:.1f}"


def table(out: Path, metric: str) -> list[str]:
    lines = ["| target | seeds | source_only | dann | target_only | dann - source_only "
             "[95% CI] | target_only - source_only [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    ran = [m for m in METHODS if any(out.glob(f"*/{m}/seed*"))]
    for lang in LANGS:
        per_seed: dict[int, list[tuple[float, ...]]] = {s: [] for s in SEEDS}
        n_cats = 0
        for cat in CATS:
            acc = accuracies(out, f"{lang}_{cat}", metric)
            seeds = sorted(set.intersection(*(set(acc.get(m, {})) for m in ran)))
            if not seeds:
                continue
            n_cats += 1
            so, da, to = ([acc[m][s] if m in ran else np.nan for s in seeds] for m in METHODS)
            for s, row in zip(seeds, zip(so, da, to, strict=True), strict=True):
                per_seed[s].append(row)
            lines.append(f"| {lang} {cat} | {len(seeds)} | {pm(so)} | {pm(da)} | {pm(to)} | "
                         f"{fmt_ci(*mean_ci(np.subtract(da, so)))} | "
                         f"{fmt_ci(*mean_ci(np.subtract(to, so)))} |")
        full = [s for s, v in per_seed.items() if v and len(v) == n_cats]
        if n_cats and full:
            avg = np.array([np.mean(per_seed[s], axis=0) for s in full])  # (seeds, 3)
            pub = ", ".join(f"{k} {v[lang]:.1f}" for k, v in PUBLISHED.items())
            lines.append(f"| **{lang} average ({n_cats} categories)** | {len(full)} | "
                         f"{pm(list(avg[:, 0]))} | {pm(list(avg[:, 1]))} | "
                         f"{pm(list(avg[:, 2]))} | {fmt_ci(*mean_ci(avg[:, 1] - avg[:, 0]))} | "
                         f"{fmt_ci(*mean_ci(avg[:, 2] - avg[:, 0]))} (published: {pub}) |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="experiments/cross_lingual/runs")
    p.add_argument("--metric", default="selected/val/target/test/accuracy")
    a = p.parse_args()
    print(f"`{a.metric}`, % (mean ± 95% CI half-width over seeds)\n")
    print("\n".join(table(Path(a.out), a.metric)))


if __name__ == "__main__":
    main()
