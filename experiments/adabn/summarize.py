"""AdaBN vs its own source model: paired differences of target test accuracy over seeds, with
a 95% t interval (jtl.measures.stats.mean_ci). Only completed runs are read."""

from __future__ import annotations

import sys
from pathlib import Path

from jtl import rundir
from jtl.measures.stats import mean_ci


def main(out: str) -> None:
    print("| target | seeds | source_only | adabn | adabn - source_only [95% CI] |")
    print("|---|---|---|---|---|")
    for target in ("usps", "sklearn_digits"):
        pairs = []
        for seed in range(3):
            so = rundir.completed_summary(Path(out) / target / "source_only" / f"seed{seed}")
            ab = rundir.completed_summary(Path(out) / target / "adabn" / f"seed{seed}")
            if so and ab:
                pairs.append((so["target/test/accuracy"], ab["target/test/accuracy"]))
        if not pairs:
            continue
        so_m = mean_ci([a for a, _ in pairs])[0]
        ab_m = mean_ci([b for _, b in pairs])[0]
        d, lo, hi = mean_ci([b - a for a, b in pairs])
        print(f"| {target} | {len(pairs)} | {100 * so_m:.1f} | {100 * ab_m:.1f} | "
              f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/adabn/runs")
