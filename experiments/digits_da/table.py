"""Result table of the digits DA study: target test accuracy per method and direction, mean
and 95% CI over seeds, and the paired (by seed) difference to source_only with its 95% CI.

    python experiments/digits_da/table.py experiments/digits_da/runs
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

from jtl.measures.report import load_runs
from jtl.measures.stats import mean_ci

METRICS = {"final": "target/test/accuracy", "honest": "selected/val/target/test/accuracy",
           "oracle": "selected/oracle/target/test/accuracy"}
# TLlib's published LeNet digits figures (full 60k MNIST train set), target accuracy in %.
TLLIB = {("mnist", "usps"): {"source_only": 82.1, "dann": 91.7, "cdan": 96.0},
         ("usps", "mnist"): {"source_only": 74.6, "dann": 95.2, "cdan": 97.7}}


def pct(m: float, lo: float, hi: float) -> str:
    if not math.isfinite(lo):  # one seed: no interval
        return f"{100 * m:.1f}"
    return f"{100 * m:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def main(root: str) -> None:
    runs, _ = load_runs(Path(root))
    acc: dict = defaultdict(dict)  # (source, target, method) -> {seed: metrics}
    for r in runs:
        key = (r.config["source.name"], r.config["target.name"], r.config["method.name"],
               int(r.config["trainer.steps"]))
        acc[key][r.seed] = r.metrics
    print("| direction | method | steps | seeds | target acc. (final) | Δ vs source_only "
          "(paired) | target acc. (source-val selected) | oracle (target test selected) | "
          "TLlib |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = {"source_only": 0, "dann": 1, "cdan": 2}
    for (src, tgt, method, steps), by_seed in sorted(
            acc.items(), key=lambda kv: (kv[0][:2], -kv[0][3], order.get(kv[0][2], 9), kv[0][2])):
        seeds = sorted(by_seed)
        row = [f"{src} → {tgt}", method, str(steps), str(len(seeds))]
        row.append(pct(*mean_ci(by_seed[s][METRICS["final"]] for s in seeds)))
        base = acc.get((src, tgt, "source_only", steps), {})
        paired = [s for s in seeds if s in base]
        diffs = [by_seed[s][METRICS["final"]] - base[s][METRICS["final"]] for s in paired]
        if method != "source_only" and len(paired) > 1:
            m, lo, hi = mean_ci(diffs)
            row.append(f"{100 * m:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                       + (" ✓" if lo > 0 else ""))
        elif method != "source_only" and paired:
            row.append(f"{100 * diffs[0]:+.1f} (1 seed)")
        else:
            row.append("—")
        for k in ("honest", "oracle"):
            row.append(pct(*mean_ci(by_seed[s][METRICS[k]] for s in seeds)))
        row.append(str(TLLIB.get((src, tgt), {}).get(method, "—")))
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/digits_da/runs")
