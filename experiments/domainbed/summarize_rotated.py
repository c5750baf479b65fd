"""The RotatedMNIST table beside DomainBed's published numbers: per method and test
environment (the angle held out), the target's test accuracy over seeds under each selection
rule of summarize.py (training-domain validation, jtl's test-domain oracle, the final step),
mean +- standard error, and the six-environment average (each seed's average over the
environments it completed in all six, then mean +- standard error over seeds), each method's
average paired by seed against ERM (source_only) with a 95% t interval.

Only completed runs are read; an environment with no completed run is left blank and the
average then says how many environments it covers. Usage: summarize_rotated.py [runs dir]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize import LABEL, RULES, mean_se

from jtl import rundir
from jtl.measures.stats import mean_ci

ANGLES = (0, 15, 30, 45, 60, 75)
# DomainBed 2020_10_06_7df6f06/results.tex, RotatedMNIST, per test environment and the
# average (a 20-sample search x 3 trials at 5001 steps; jtl's rows are the defaults only).
PUBLISHED = {
    "val": {"source_only": (95.9, 98.9, 98.8, 98.9, 98.9, 96.4, 98.0),
            "irm": (95.5, 98.8, 98.7, 98.6, 98.7, 95.9, 97.7),
            "vrex": (95.9, 99.0, 98.9, 98.9, 98.7, 96.2, 97.9),
            "group_dro": (95.6, 98.9, 98.9, 99.0, 98.9, 96.5, 98.0),
            "mixup": (95.8, 98.9, 98.9, 98.9, 98.8, 96.5, 98.0)},
    "oracle": {"source_only": (95.3, 98.7, 98.9, 98.7, 98.9, 96.2, 97.8),
               "irm": (94.9, 98.7, 98.6, 98.6, 98.7, 95.2, 97.5),
               "group_dro": (95.9, 99.0, 98.9, 98.8, 98.6, 96.3, 97.9),
               "mixup": (95.8, 98.7, 99.0, 98.8, 98.8, 96.6, 98.0)},
}


def accuracies(out: Path, method: str, env: int, rule: str) -> dict[int, float]:
    """{seed: test-environment accuracy in points at the rule's step}, completed runs."""
    found = {}
    for d in sorted((out / method / f"env{env}").glob("seed*")):
        s = rundir.completed_summary(d)
        key = RULES[rule][1]
        if s is not None and key in s:
            found[int(d.name[4:])] = 100.0 * float(s[key])
    return found


def averages(out: Path, method: str, rule: str) -> tuple[dict[int, float], int]:
    """({seed: mean over the environments every seed completed}, how many environments)."""
    per_env = {e: accuracies(out, method, e, rule) for e in range(len(ANGLES))}
    envs = [e for e, a in per_env.items() if a]
    seeds = sorted(set.intersection(*(set(per_env[e]) for e in envs))) if envs else []
    return {s: float(np.mean([per_env[e][s] for e in envs])) for s in seeds}, len(envs)


def table(out: Path, rule: str) -> list[str]:
    title, key, published = RULES[rule]
    head = " | ".join(f"{a}" for a in ANGLES)
    lines = [f"**{title}** (`{key}`, the held-out angle's test split)", "",
             f"| method | {head} | avg | - ERM avg [95% CI] |",
             "|---|" + "---|" * (len(ANGLES) + 2)]
    erm, _ = averages(out, "source_only", rule)
    methods = sorted((d.name for d in out.glob("*") if d.is_dir()),
                     key=lambda m: (m != "source_only", m))
    for method in methods:
        cells = []
        for e in range(len(ANGLES)):
            acc = accuracies(out, method, e, rule)
            cells.append(mean_se(list(acc.values())) if acc else "")
        avg, n = averages(out, method, rule)
        if not avg:
            continue
        a = mean_se(list(avg.values())) + ("" if n == len(ANGLES) else f" ({n} envs)")
        seeds = sorted(set(avg) & set(erm))
        diff = "" if method == "source_only" or len(seeds) < 2 else (
            "{:+.1f} [{:+.1f}, {:+.1f}]".format(*mean_ci([avg[s] - erm[s] for s in seeds])))
        lines.append(f"| {LABEL.get(method, method)} (jtl) | {' | '.join(cells)} | {a} | "
                     f"{diff} |")
    for method, pub in PUBLISHED.get(published, {}).items():
        if (out / method).is_dir():
            lines.append(f"| {LABEL[method]} (DomainBed) | "
                         + " | ".join(f"{v:.1f}" for v in pub) + " |  |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="?", default="experiments/domainbed/runs_rotated", type=Path)
    args = ap.parse_args()
    for rule in RULES:
        print("\n".join(table(args.runs, rule)), end="\n\n")


if __name__ == "__main__":
    main()
