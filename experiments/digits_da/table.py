"""Result table and plot of the digits DA study, from its run dirs.

    python experiments/digits_da/table.py experiments/digits_da/runs

Per direction and method: target test accuracy (final step, source-val selected, oracle),
mean and 95% CI over seeds, and the paired (same seed) difference to source_only with its
95% CI. Only completed runs count; unfinished ones are listed. Two runs of one (direction,
method, seed) are an error naming both, and so is a run whose config differs from its
direction's recipe in anything but method and seed: a table never mixes two recipes.
Writes results.md and results.png beside this file (results_<x>.* for a sweep root runs_<x>).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from jtl import rundir
from jtl.errors import JtlError
from jtl.measures.stats import clip_ci, mean_ci

HERE = Path(__file__).resolve().parent
FINAL, HONEST, ORACLE = ("target/test/accuracy", "selected/val/target/test/accuracy",
                         "selected/oracle/target/test/accuracy")
SOURCE_VAL = "source/val/accuracy"  # label-free for the target: does adaptation cost source?
# TLlib's published LeNet digits figures (full MNIST, 50k iterations of batch 128), in %.
TLLIB = {("mnist", "usps"): {"source_only": 82.1, "dann": 91.7, "cdan": 96.0},
         ("usps", "mnist"): {"source_only": 74.6, "dann": 95.2, "cdan": 97.7}}
ORDER = ["source_only", "target_only", "dann", "cdan", "mcc", "mdd", "coral", "mmd",
         "domain_confusion", "entropy_min", "self_training"]


def recipe(cfg: dict) -> dict:
    """A run's identity minus what varies within the table (method, seed)."""
    ident = rundir.identity(cfg)
    return {k: v for k, v in ident.items() if k not in ("method", "seed")}


def collect(root: Path) -> tuple[dict, list[str]]:
    """{(source, target): {method: {seed: summary}}}, and the unfinished run dirs."""
    table: dict = defaultdict(lambda: defaultdict(dict))
    where: dict = {}
    recipes: dict = {}
    unfinished = []
    for run in rundir.find_runs(root):
        cfg = rundir.load_config(run)
        s = rundir.read_summary(run)
        if s is None or s.get("status") != "completed":
            unfinished.append(f"{run} ({rundir.status(run)})")
            continue
        direction = (cfg["source"]["name"], cfg["target"]["name"])
        method, seed = cfg["method"]["name"], int(cfg["seed"])
        r = recipe(cfg)
        if recipes.setdefault(direction, (r, run))[0] != r:
            first = recipes[direction][1]
            raise JtlError(f"{run} and {first} were trained with different recipes "
                           f"({rundir.differing_keys(rundir.load_config(first), cfg)}); "
                           "one table holds one recipe")
        if seed in table[direction][method]:
            raise JtlError(f"{where[direction, method, seed]} and {run} are both seed {seed} of "
                           f"{method} on {direction}: remove one")
        table[direction][method][seed] = s
        where[direction, method, seed] = run
    return table, unfinished


def pct(values: list[float]) -> tuple[str, float, float, float]:
    m, lo, hi = mean_ci(values)
    if len(values) < 2:
        return f"{100 * m:.1f} (1 seed)", m, m, m
    lo, hi = clip_ci(lo, hi, FINAL)
    return f"{100 * m:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]", m, lo, hi


def rows(table: dict) -> list[dict]:
    out = []
    for direction in sorted(table):
        methods = table[direction]
        base = methods.get("source_only", {})
        for method in sorted(methods, key=lambda m: (ORDER.index(m) if m in ORDER else 99, m)):
            by_seed = methods[method]
            seeds = sorted(by_seed)
            row = {"direction": direction, "method": method, "seeds": seeds,
                   "steps": by_seed[seeds[0]]["step"]}
            for key, metric in (("final", FINAL), ("honest", HONEST), ("oracle", ORACLE)):
                row[key] = pct([by_seed[s][metric] for s in seeds])
            src_val = [by_seed[s][SOURCE_VAL] for s in seeds if SOURCE_VAL in by_seed[s]]
            row["source_val"] = pct(src_val)[0] if len(src_val) == len(seeds) else "—"
            paired = [s for s in seeds if s in base]
            diffs = [by_seed[s][FINAL] - base[s][FINAL] for s in paired]
            if method == "source_only" or not paired:
                row["delta"] = "—"
            elif len(paired) == 1:
                row["delta"] = f"{100 * diffs[0]:+.1f} (1 seed)"
            else:
                m, lo, hi = mean_ci(diffs)
                row["delta"] = (f"{100 * m:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                                + (" ✓" if lo > 0 else (" ✗" if hi < 0 else "")))
            row["tllib"] = TLLIB.get(direction, {}).get(method)
            out.append(row)
    return out


def markdown(table_rows: list[dict], unfinished: list[str]) -> str:
    lines = ["| direction | method | steps | seeds | target acc. (final) | Δ vs source_only "
             "(paired) | source-val selected | oracle (target test) | TLlib | source val acc. "
             "(no target label) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table_rows:
        src, tgt = r["direction"]
        tllib = "—" if r["tllib"] is None else f"{r['tllib']:.1f}"
        lines.append(f"| {src} → {tgt} | {r['method']} | {r['steps']} | "
                     f"{','.join(map(str, r['seeds']))} | {r['final'][0]} | {r['delta']} | "
                     f"{r['honest'][0]} | {r['oracle'][0]} | {tllib} | {r['source_val']} |")
    if unfinished:
        lines += ["", f"Not in the table ({len(unfinished)} unfinished runs):", ""]
        lines += [f"- {u}" for u in unfinished]
    return "\n".join(lines) + "\n"


def plot(table_rows: list[dict], path: Path) -> None:
    """Accuracy per method with its 95% CI, one panel per direction, TLlib's figure beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directions = sorted({r["direction"] for r in table_rows})
    fig, axes = plt.subplots(1, len(directions), figsize=(6 * len(directions), 4.2),
                             squeeze=False)
    for ax, direction in zip(axes[0], directions, strict=True):
        rs = [r for r in table_rows if r["direction"] == direction]
        x = np.arange(len(rs))
        m = np.array([100 * r["final"][1] for r in rs])
        err = np.array([[100 * (r["final"][1] - r["final"][2]) for r in rs],
                        [100 * (r["final"][3] - r["final"][1]) for r in rs]])
        ax.bar(x, m, yerr=err, capsize=3, color="tab:blue", alpha=0.8, label="jtl (95% CI)")
        tl = [(i, r["tllib"]) for i, r in enumerate(rs) if r["tllib"] is not None]
        if tl:
            ax.scatter([i for i, _ in tl], [v for _, v in tl], marker="D", color="tab:red",
                       zorder=3, label="TLlib (published)")
        ax.set_xticks(x, [r["method"] for r in rs], rotation=40, ha="right")
        ax.set_ylim(0, 100)
        ax.set_ylabel("target test accuracy (%)")
        ax.set_title(f"{direction[0]} → {direction[1]}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    rundir.atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def main(root: str) -> int:
    try:
        if not Path(root).is_dir():
            raise JtlError(f"{root} is not a directory; run experiments/digits_da/run.sh first")
        table, unfinished = collect(Path(root))
        if not table:
            raise JtlError(f"no completed run under {root}")
    except JtlError as e:
        print(f"jtl: error: {e}", file=sys.stderr)
        return 2
    table_rows = rows(table)
    md = markdown(table_rows, unfinished)
    print(md, end="")
    stem = "results" + Path(root).resolve().name.removeprefix("runs")  # runs_6000 -> results_6000
    rundir.atomic_write_text(HERE / f"{stem}.md", md)
    plot(table_rows, HERE / f"{stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(HERE / "runs")))
