"""The Office-31 tables, from completed runs only.

`da`: unsupervised DA on the frozen ImageNet EfficientNet-Lite0 features, six tasks x
methods: target accuracy (the whole target domain) per task and the six-task average, mean
over seeds, under honest selection (`selected/val`: the evaluation with the best source val
accuracy) and the oracle (`selected/oracle`: the best target test accuracy, TLlib's
practice: labelled as such); each method's gain over source_only on the six-task average,
paired by seed (seed s's average minus source_only's seed-s average) with a 95% t interval
(jtl.measures.stats.mean_ci); TLlib's ResNet-50 averages (fine-tuned, oracle) beside.

`ft`: fixed feature extractor vs fine-tuning on Office-31 targets at k labeled examples per
class: per (target, k) and recipe, held-out target test accuracy under `selected/val` (the
final step where k leaves no val split), and each recipe's difference from linear_probe,
paired by seed.

Usage: summarize.py da|ft [runs dir] [--plot averages.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jtl import rundir
from jtl.measures.stats import mean_ci

TEST = "target/test/accuracy"
RULES = {"val": "honest: best source val", "oracle": "oracle: best target test (TLlib's)"}
TASKS = ("A2W", "D2W", "W2D", "A2D", "D2A", "W2A")
METHODS = ("source_only", "dann", "cdan", "mcc", "mdd", "mmd")
LABEL = {"source_only": "source only (ERM)", "dann": "DANN", "cdan": "CDAN", "mcc": "MCC",
         "mdd": "MDD", "mmd": "DAN (MK-MMD)"}
# TLlib's ResNet-50 Office-31 averages (fine-tuned, selected on the target), from the brief
# of issue 22; DAN's is not given there.
TLLIB = {"source_only": 79.5, "dann": 86.1, "cdan": 87.7, "mcc": 89.6, "mdd": 89.6}
RECIPES = ("linear_probe", "freeze_k", "finetune", "lp_ft", "target_only")
TARGETS = ("amazon", "dslr", "webcam")
KS = ("1", "3", "all")


def accuracies(run: Path, key: str) -> dict[int, float]:
    """{seed: accuracy in points} of the completed seeds of one (vmapped) run dir."""
    found = {}
    for d in sorted(run.glob("seed*")):
        s = rundir.completed_summary(d)
        if s is not None and key in s:
            found[int(d.name[4:])] = 100.0 * float(s[key])
    return found


def fmt_ci(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    return "{:+.1f} [{:+.1f}, {:+.1f}]".format(*mean_ci(values))


def da_table(out: Path, rule: str) -> list[str]:
    """The per-task means, and the average over the tasks every method listed has completed
    on its seeds (all six when the sweep is done; the note says which)."""
    key = f"selected/{rule}/{TEST}"
    acc = {m: {t: accuracies(out / t / m, key) for t in TASKS} for m in METHODS}
    shown = [m for m in METHODS if any(acc[m].values())]
    done = [t for t in TASKS if shown and all(len(acc[m][t]) >= 2 for m in shown)]
    head = " | ".join(t.replace("2", "->") for t in TASKS)
    note = "" if done == list(TASKS) else \
        f" -- avg over {', '.join(done) or 'no task'} only (the others unfinished)"
    lines = [f"**{RULES[rule]}** (`{key}`, mean over seeds{note})", "",
             f"| method | {head} | avg | - source only, paired [95% CI] | TLlib R-50 avg |",
             "|---|" + "---|" * (len(TASKS) + 3)]
    base = acc["source_only"]
    for m in shown:
        cells = [f"{np.mean(list(acc[m][t].values())):.1f}" if acc[m][t] else "" for t in TASKS]
        seeds = sorted(set.intersection(*(set(acc[m][t]) for t in done))) if done else []
        avg = {s: np.mean([acc[m][t][s] for t in done]) for s in seeds}
        both = [s for s in seeds if all(s in base[t] for t in done)]
        gain = "" if m == "source_only" else fmt_ci(
            [avg[s] - np.mean([base[t][s] for t in done]) for s in both])
        mean = f"{np.mean(list(avg.values())):.1f}" if avg else ""
        pub = f"{TLLIB[m]:.1f}" if m in TLLIB else ""
        lines.append(f"| {LABEL[m]} | {' | '.join(cells)} | {mean} | {gain} | {pub} |")
    return lines


def ft_table(out: Path) -> list[str]:
    key = f"selected/val/{TEST}"
    lines = ["**held-out target test accuracy** (`selected/val`: best target val; the final "
             "step where k leaves no val), mean over seeds; recipe - linear_probe paired by seed",
             "", "| target | k | " + " | ".join(RECIPES) + " |",
             "|---|---|" + "---|" * len(RECIPES)]
    for target in TARGETS:
        for k in KS:
            acc = {r: accuracies(out / target / f"k{k}" / r, key) for r in RECIPES}
            if not any(acc.values()):
                continue
            lp = acc["linear_probe"]
            cells = []
            for r in RECIPES:
                if not acc[r]:
                    cells.append("")
                    continue
                cell = f"{np.mean(list(acc[r].values())):.1f}"
                seeds = sorted(set(acc[r]) & set(lp))
                if r != "linear_probe" and len(seeds) > 1:
                    cell += " (" + fmt_ci([acc[r][s] - lp[s] for s in seeds]) + ")"
                cells.append(cell)
            lines.append(f"| {target} | {k} | " + " | ".join(cells) + " |")
    return lines


def da_plot(out: Path, path: Path) -> None:
    """Six-task averages per method (honest and oracle, mean and 95% t interval over seeds)
    beside TLlib's ResNet-50 averages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for j, rule in enumerate(RULES):
        key = f"selected/{rule}/{TEST}"
        for i, m in enumerate(METHODS):
            acc = {t: a for t in TASKS if len(a := accuracies(out / t / m, key)) >= 2}
            seeds = sorted(set.intersection(*(set(a) for a in acc.values()))) if acc else []
            if len(seeds) < 2:
                continue
            mean, lo, hi = mean_ci([np.mean([acc[t][s] for t in acc]) for s in seeds])
            ax.errorbar(i + 0.2 * (j - 1), mean, yerr=[[mean - lo], [hi - mean]], fmt="o",
                        color=f"C{j}", label=f"jtl, frozen Lite0, {rule}" if i == 0 else None)
    pub = [(i, TLLIB[m]) for i, m in enumerate(METHODS) if m in TLLIB]
    ax.plot([i + 0.2 for i, _ in pub], [v for _, v in pub], "s", color="C2",
            label="TLlib ResNet-50 fine-tuned (oracle)")
    ax.set_xticks(range(len(METHODS)), [LABEL[m] for m in METHODS], fontsize=8)
    ax.set_ylabel("Office-31 six-task avg (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", choices=("da", "ft"))
    ap.add_argument("runs", nargs="?", type=Path)
    ap.add_argument("--plot", type=Path, help="da: write the averages' plot here (.png)")
    args = ap.parse_args()
    out = args.runs or Path(f"experiments/office31/runs/{args.table}")
    if args.table == "da":
        for rule in RULES:
            print("\n".join(da_table(out, rule)), end="\n\n")
        if args.plot:
            da_plot(out, args.plot)
    else:
        print("\n".join(ft_table(out)))


if __name__ == "__main__":
    main()
