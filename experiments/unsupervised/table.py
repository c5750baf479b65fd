"""Tables of the unsupervised-transfer and zero-shot study, from its results.jsonl.

    python experiments/unsupervised/table.py [results.jsonl]

Clustering: per direction and encoder, target NMI / ARI (label-free task, labels only score)
and the label-using linear-probe accuracy, mean and 95% CI over seeds; then paired (same seed)
differences of SimCLR to every other encoder with their 95% CI. Zero-shot: DAP balanced
accuracy on the unseen classes against chance among them (1/K), beside the plain accuracy,
the majority class's share and the seen-class balanced accuracy. A (key) seen
twice is an error: a table never averages a duplicate.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from jtl.errors import JtlError
from jtl.measures.stats import mean_ci

HERE = Path(__file__).resolve().parent
ENCODERS = ("simclr", "random_init", "raw_pixels", "source_only", "autoencoder")
LABEL = {"simclr": "SimCLR (unlabeled source)", "random_init": "random-init encoder",
         "raw_pixels": "raw pixels", "source_only": "supervised source (source_only)",
         "autoencoder": "autoencoder (unlabeled source)"}
DIRECTION = {"m2u": "MNIST → USPS", "u2m": "USPS → MNIST"}
NAME = {"mnist": "MNIST", "usps": "USPS"}


def load(path: Path) -> list[dict[str, Any]]:
    rows, seen = [], set()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row["key"] in seen:
            raise JtlError(f"{path}: {row['key']} appears twice; delete one line")
        seen.add(row["key"])
        rows.append(row)
    return rows


def fmt(values: list[float], scale: float = 1.0, sign: bool = False) -> str:
    m, lo, hi = (scale * v for v in mean_ci(values))
    f = "{:+.1f}" if sign else "{:.1f}"
    if len(values) < 2:
        return f.format(m) + " (1 seed)"
    return f"{f.format(m)} [{f.format(lo)}, {f.format(hi)}]"


def excludes(values: list[float], ref: float) -> str:
    if len(values) < 2:
        return "n/a"
    _, lo, hi = mean_ci(values)
    return "yes" if lo > ref or hi < ref else "no"


def cluster_tables(rows: list[dict[str, Any]]) -> list[str]:
    by: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for r in rows:
        if r["table"] == "cluster":
            by[r["direction"], r["encoder"]][r["seed"]] = r
    out: list[str] = []
    for d in DIRECTION:
        if not any(k[0] == d for k in by):
            continue
        out += [f"### {DIRECTION[d]}: target test features, k-means (k = 10)", "",
                "| encoder | NMI ×100 | ARI ×100 | linear probe acc. % (label-using) | seeds |",
                "|---|---|---|---|---|"]
        for e in ENCODERS:
            runs = by.get((d, e), {})
            if runs:
                v = list(runs.values())
                out.append(f"| {LABEL[e]} | {fmt([r['cluster_nmi'] for r in v], 100)} | "
                           f"{fmt([r['cluster_ari'] for r in v], 100)} | "
                           f"{fmt([r['cluster_probe_accuracy'] for r in v], 100)} | {len(v)} |")
        out += ["", f"Paired by seed, SimCLR minus each encoder ({DIRECTION[d]}):", "",
                "| SimCLR − | ΔNMI ×100 | CI excludes 0 | ΔARI ×100 | Δprobe % | seeds |",
                "|---|---|---|---|---|---|"]
        simclr = by.get((d, "simclr"), {})
        for e in ENCODERS[1:]:
            other = by.get((d, e), {})
            seeds = sorted(set(simclr) & set(other))
            if not seeds:
                continue
            dn, da, dp = ([simclr[s][k] - other[s][k] for s in seeds] for k in
                          ("cluster_nmi", "cluster_ari", "cluster_probe_accuracy"))
            out.append(f"| {LABEL[e]} | {fmt(dn, 100, True)} | {excludes(dn, 0.0)} | "
                       f"{fmt(da, 100, True)} | {fmt(dp, 100, True)} | {len(seeds)} |")
        out.append("")
    return out


def zero_shot_table(rows: list[dict[str, Any]]) -> list[str]:
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        if r["table"] == "zero_shot":
            by[r["seen_on"], r["scored_on"]].append(r)
    if not by:
        return []
    out = ["### Zero-shot digits: DAP on seven-segment codes, unseen classes {0, 7}", "",
           "| seen classes from | scored on | unseen balanced acc. % | chance % | CI excludes "
           "chance | unseen acc. % | majority class % | seen balanced acc. % (chance 12.5) "
           "| seeds |", "|---|---|---|---|---|---|---|---|---|"]
    for (seen_on, scored_on), v in sorted(by.items()):
        un = [r["zero_shot_unseen_balanced_accuracy"] for r in v]
        chance = v[0]["zero_shot_unseen_chance"]
        out.append(f"| {NAME[seen_on]} | {NAME[scored_on]} | {fmt(un, 100)} | {100 * chance:.0f}"
                   f" | {excludes(un, chance)} | "
                   f"{fmt([r['zero_shot_unseen_accuracy'] for r in v], 100)} | "
                   f"{100 * v[0]['zero_shot_unseen_majority']:.1f} | "
                   f"{fmt([r['zero_shot_seen_balanced_accuracy'] for r in v], 100)} | {len(v)} |")
    return [*out, ""]


def render(rows: list[dict[str, Any]]) -> str:
    head = ["# Unsupervised transfer and zero-shot digits: results", "",
            "Generated by `table.py` from `results.jsonl`; mean [95% Student-t CI] over seeds.",
            ""]
    return "\n".join([*head, "## Clustering the target", "", *cluster_tables(rows),
                      "## Zero-shot", "", *zero_shot_table(rows)])


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.jsonl"
    text = render(load(path))
    (HERE / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
