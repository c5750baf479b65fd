"""The MNIST-C table: each source-free method against its own source model on every corruption,
paired by seed (95% t interval, jtl.measures.stats.mean_ci), and on the average over the
corruptions where both are complete for every seed (each seed's mean over those corruptions,
then the interval over seeds). The online methods (tent, bn_adapt) are scored by their online
accuracy (each stream batch predicted before its update); the offline ones (adabn, t3a, shot)
by the adapted network's accuracy on the corrupted test split; source_only by the source
model on that split (mnistc_source.py; the stream holds the same examples, so its online and
offline accuracy are one number). Only completed runs are read.

    python experiments/test_time/summarize_mnistc.py [runs dir] [--out results dir]

prints the tables and, with --out, writes mnistc.md and mnistc.json there (the numbers the
figures read: plot_mnistc.py)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from jtl import rundir
from jtl.measures.stats import mean_ci

CORRUPTIONS = ("shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale",
               "rotate", "brightness", "translate", "stripe", "fog", "spatter", "dotted_line",
               "zigzag", "canny_edges")
ONLINE = ("bn_adapt", "tent")
OFFLINE = ("adabn", "t3a", "shot")
METHODS = ONLINE + OFFLINE
SEEDS = (0, 1, 2)
KEY = {**{m: "online/target/accuracy" for m in ONLINE},
       **{m: "target/test/accuracy" for m in OFFLINE}}


def source_accuracy(root: Path, corruption: str) -> dict[int, float]:
    f = root / corruption / "source_only.json"
    if not f.exists():
        return {}
    row = json.loads(f.read_text())
    return {s: 100 * float(row[str(s)]) for s in SEEDS if str(s) in row}


def method_accuracy(root: Path, corruption: str, method: str) -> dict[int, float]:
    out = {}
    for s in SEEDS:
        summary = rundir.completed_summary(root / corruption / method / f"seed{s}")
        if summary is not None and KEY[method] in summary:
            out[s] = 100 * float(summary[KEY[method]])
    return out


def collect(root: Path) -> dict:
    """{corruption: {"source_only": {seed: acc}, method: {seed: acc}, ...}} (percent)."""
    return {c: {"source_only": source_accuracy(root, c),
                **{m: method_accuracy(root, c, m) for m in METHODS}} for c in CORRUPTIONS}


def paired(base: dict[int, float], other: dict[int, float]) -> dict | None:
    """The method's difference from source_only on the seeds where both are complete."""
    seeds = sorted(base.keys() & other.keys())
    if not seeds:
        return None
    d, lo, hi = mean_ci([other[s] - base[s] for s in seeds])
    return {"seeds": seeds, "source": mean_ci([base[s] for s in seeds])[0],
            "method": mean_ci([other[s] for s in seeds])[0], "diff": d, "lo": lo, "hi": hi}


def average(data: dict, method: str, against: str = "source_only") -> dict | None:
    """Over the corruptions where `against` and the method have every seed: per seed the
    mean over those corruptions, then the paired interval over seeds."""
    full = [c for c in CORRUPTIONS if set(SEEDS) <= data[c][against].keys()
            and set(SEEDS) <= data[c][method].keys()]
    if not full:
        return None
    base = {s: sum(data[c][against][s] for c in full) / len(full) for s in SEEDS}
    other = {s: sum(data[c][method][s] for c in full) / len(full) for s in SEEDS}
    return {**paired(base, other), "corruptions": full}


def verdict(p: dict) -> str:
    """`hurts` / `helps` where the interval excludes 0, else `~`."""
    if p["hi"] < 0:
        return "hurts"
    if p["lo"] > 0:
        return "helps"
    return "~"


def fmt(x: float) -> str:
    return "n/a" if math.isinf(x) else f"{x:+.1f}"


def cell(p: dict | None) -> str:
    if p is None:
        return "—"
    mark = {"hurts": " **↓**", "helps": "", "~": " ~"}[verdict(p)]
    return f"{p['method']:.1f} ({fmt(p['diff'])} [{fmt(p['lo'])}, {fmt(p['hi'])}]){mark}"


def tables(data: dict) -> tuple[list[str], dict]:
    """(markdown lines, the numbers as JSON-able dicts)."""
    numbers: dict = {"per_corruption": {}, "average": {}}
    lines = ["| corruption | source_only | " + " | ".join(
        f"{m} ({'online' if m in ONLINE else 'offline'})" for m in METHODS) + " |",
        "|---|---|" + "---|" * len(METHODS)]
    for c in CORRUPTIONS:
        base = data[c]["source_only"]
        if not base:
            continue
        ps = {m: paired(base, data[c][m]) for m in METHODS}
        numbers["per_corruption"][c] = {"source_only": base, **{m: p for m, p in ps.items() if p}}
        src = sum(base.values()) / len(base)
        lines.append(f"| {c} | {src:.1f} | " + " | ".join(cell(ps[m]) for m in METHODS) + " |")
    avg = {m: average(data, m) for m in METHODS}
    numbers["average"] = {m: a for m, a in avg.items() if a}
    lines.append("| **average** (over the corruptions complete for the method) | — | " +
                 " | ".join(cell(a) + (f", {len(a['corruptions'])} corr." if a else "")
                            for a in (avg[m] for m in METHODS)) + " |")
    counts = ["", "| method | corruptions | source_only | method | difference [95% CI] | "
              "helps / ~ / hurts (per corruption) |", "|---|---|---|---|---|---|"]
    for m in METHODS:
        a = avg[m]
        if a is None:
            counts.append(f"| {m} | 0 | — | — | — | — |")
            continue
        v = [verdict(row[m]) for row in numbers["per_corruption"].values()
             if m in row and len(row[m]["seeds"]) == len(SEEDS)]
        counts.append(f"| {m} | {len(a['corruptions'])} | {a['source']:.1f} | {a['method']:.1f}"
                      f" | {fmt(a['diff'])} [{fmt(a['lo'])}, {fmt(a['hi'])}] | "
                      f"{v.count('helps')} / {v.count('~')} / {v.count('hurts')} |")
    # What TENT's entropy steps add to the test-batch statistics it trains on, online.
    vs = ["", "| tent vs bn_adapt (online) | corruptions | bn_adapt | tent | difference [95% CI] "
          "| per corruption: helps / ~ / hurts |", "|---|---|---|---|---|---|"]
    a = average(data, "tent", "bn_adapt")
    if a is not None:
        v = [verdict(p) for c in a["corruptions"]
             if (p := paired(data[c]["bn_adapt"], data[c]["tent"])) is not None]
        numbers["tent_vs_bn_adapt"] = a
        vs.append(f"| average | {len(a['corruptions'])} | {a['source']:.1f} | {a['method']:.1f} | "
                  f"{fmt(a['diff'])} [{fmt(a['lo'])}, {fmt(a['hi'])}] | "
                  f"{v.count('helps')} / {v.count('~')} / {v.count('hurts')} |")
    return lines + counts + vs, numbers


def main(argv: list[str]) -> None:
    out = None
    if "--out" in argv:
        i = argv.index("--out")
        out, argv = Path(argv[i + 1]), argv[:i] + argv[i + 2:]
    root = Path(argv[0] if argv else "experiments/test_time/runs_mnistc")
    lines, numbers = tables(collect(root))
    print("\n".join(lines))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "mnistc.md").write_text("\n".join(lines) + "\n")
        (out / "mnistc.json").write_text(json.dumps(numbers, indent=1, sort_keys=True,
                                                    default=str) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
