"""Each source-free method vs its own source model: target test accuracy, and the paired
difference over seeds with a 95% t interval (jtl.measures.stats.mean_ci). Only completed runs
are read; a row pairs the seeds where both runs completed."""

from __future__ import annotations

import sys
from pathlib import Path

from jtl import rundir
from jtl.measures.stats import mean_ci

# (row, run dir name, the dir of the run it is paired with): every method from the digits
# recipe's source model, then SHOT's source recipe (label smoothing 0.1) and SHOT from it,
# then two methods against the statistics-only AdaBN.
ROWS = [(m, m, "source_only") for m in ("adabn", "bn_adapt", "t3a", "tent", "shot")] + [
    ("source_only, label smoothing 0.1", "source_ls", "source_only"),
    ("shot from the smoothed source", "shot_ls", "source_ls"),
    ("tent vs adabn: what training BN scale/shift adds", "tent", "adabn"),
    ("shot vs adabn", "shot", "adabn"),
]
DIRECTIONS = {"m2u": "MNIST -> USPS", "u2m": "USPS -> MNIST"}


def accuracy(out: Path, direction: str, name: str, seed: int) -> float | None:
    s = rundir.completed_summary(out / direction / name / f"seed{seed}")
    return None if s is None else 100 * s["target/test/accuracy"]


def main(out: str) -> None:
    root = Path(out)
    print("| direction | method | vs | seeds | vs | method | difference [95% CI] | per seed |")
    print("|---|---|---|---|---|---|---|---|")
    for direction, label in DIRECTIONS.items():
        for row, name, base in ROWS:
            pairs = [(a, b) for seed in range(3)
                     if (a := accuracy(root, direction, base, seed)) is not None
                     and (b := accuracy(root, direction, name, seed)) is not None]
            if not pairs:
                continue
            a_m, b_m = mean_ci([a for a, _ in pairs])[0], mean_ci([b for _, b in pairs])[0]
            d, lo, hi = mean_ci([b - a for a, b in pairs])
            seeds = " / ".join(f"{b:.1f}" for _, b in pairs)
            print(f"| {label} | {row} | {base} | {len(pairs)} | {a_m:.1f} | {b_m:.1f} | "
                  f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}] | {seeds} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/test_time/runs")
