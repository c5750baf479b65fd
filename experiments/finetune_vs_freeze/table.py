"""Tables and plots of the finetune_vs_freeze study from its runs' summary.json.

    .venv/bin/python experiments/finetune_vs_freeze/table.py [RUNS]

Writes results.md, results.csv, curves.png, new_classes.png, new_classes_lenet.png,
new_classes_select.png and new_classes_select_gain.png beside this file. Accuracy is
the target test accuracy at the final step (no validation split below k = 10, so every run is
read at the same, final step). Means and 95% Student-t intervals over seeds come from
`jtl.measures.stats.mean_ci`; a recipe's gap to `target_only` is paired by seed on the same
k-shot subset (`jtl.measures.ntg.negative_transfer_gap`: NTG = err(recipe) - err(target_only),
negative = transfer helped). In the LeNet new-classes design a seed is an episode with its own
support set, so there the intervals are over episodes (both LeNet designs). Their
`prototype_conv2` and `prototype_selected` arms are read from the `prototype.json` files
`layers.py` writes.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

from jtl.measures.ntg import negative_transfer_gap
from jtl.measures.stats import clip_ci, mean_ci
from jtl.rundir import atomic_savefig, atomic_write_text, read_json, read_summary

HERE = Path(__file__).resolve().parent
METRIC = "target/test/accuracy"
KS = ("1", "5", "10", "50", "all")
DIRECTIONS = {"usps_to_mnist": "USPS → MNIST", "mnist_to_usps": "MNIST → USPS"}
NEW = {"mnist04_to_mnist59": "MNIST 0-4 → MNIST 5-9", "mnist04_to_usps59": "MNIST 0-4 → USPS 5-9"}


def collect(root: Path) -> dict[tuple[str, str, str], dict[int, float]]:
    """(direction, arm, k) -> {seed: accuracy} of the completed runs under root (and of the
    layer prototypes `layers.py` wrote there)."""
    out: dict[tuple[str, str, str], dict[int, float]] = {}
    for path in sorted(root.glob("*/*/k*/seed*/*.json")):
        run = path.parent
        if path.name not in ("summary.json", "prototype.json"):
            continue
        s = read_summary(run) if path.name == "summary.json" else read_json(path)
        if not s or s.get("status") != "completed":
            continue
        direction, arm, k = run.parts[-4], run.parts[-3], run.parts[-2][1:]
        out.setdefault((direction, arm, k), {})[int(s["seed"])] = float(s[METRIC])
    return out


def acc_cell(accs: dict[int, float]) -> tuple[str, tuple[float, float, float]]:
    mean, low, high = mean_ci(list(accs.values()))
    low, high = clip_ci(low, high, METRIC)
    text = f"{100 * mean:.1f}" + (f" ± {50 * (high - low):.1f}" if math.isfinite(low) else "")
    return text, (mean, low, high)


def gap(accs: dict[int, float], base: dict[int, float]) -> dict[str, float | str] | None:
    """NTG of a recipe against target_only, on the seeds both have."""
    seeds = sorted(set(accs) & set(base))
    if len(seeds) < 2:
        return None
    return negative_transfer_gap({s: 1 - accs[s] for s in seeds},
                                 {s: 1 - base[s] for s in seeds})


def gap_text(g: dict | None) -> str:
    if g is None:
        return "–"
    # NTG in points; the table shows the gain (-NTG): positive = better than target_only.
    return (f"{-100 * g['ntg_mean']:+.1f} [{-100 * g['ntg_ci_high']:+.1f}, "
            f"{-100 * g['ntg_ci_low']:+.1f}]")


def table(runs: dict, groups: dict[str, str], arms: list[str], ks: tuple[str, ...],
          rows_out: list[dict], grid: str, over: str = "seeds") -> str:
    md = io.StringIO()
    for key, label in groups.items():
        present = [k for k in ks if any((key, a, k) in runs for a in arms)]
        if not present:
            continue
        md.write(f"\n### {label}\n\nTarget test accuracy (%), mean ± 95% CI over {over}; "
                 f"below it the gain over `target_only` in points, paired by {over[:-1]}, "
                 "[95% CI].\n\n")
        md.write("| recipe | " + " | ".join(f"k = {k}" for k in present) + " |\n")
        md.write("|---" * (len(present) + 1) + "|\n")
        for arm in arms:
            cells = []
            for k in present:
                accs = runs.get((key, arm, k))
                if not accs:
                    cells.append("")
                    continue
                text, (mean, low, high) = acc_cell(accs)
                g = None if arm == "target_only" else gap(accs, runs.get((key, "target_only", k),
                                                                          {}))
                cells.append(text + ("" if g is None else f"<br>{gap_text(g)}"))
                rows_out.append({"grid": grid, "group": key, "arm": arm, "k": k, "n": len(accs),
                                 "accuracy": mean, "accuracy_ci_low": low,
                                 "accuracy_ci_high": high,
                                 **({} if g is None else {
                                     "ntg": g["ntg_mean"], "ntg_ci_low": g["ntg_ci_low"],
                                     "ntg_ci_high": g["ntg_ci_high"],
                                     "ntg_verdict": g["ntg_verdict"]})})
            if any(cells):
                md.write(f"| {arm} | " + " | ".join(cells) + " |\n")
    return md.getvalue()


def plot(runs: dict, groups: dict[str, str], arms: list[str], ks: tuple[str, ...],
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.5), squeeze=False)
    for ax, (key, label) in zip(axes[0], groups.items(), strict=True):
        for i, arm in enumerate(arms):
            xs, ms, lo, hi = [], [], [], []
            for j, k in enumerate(ks):
                accs = runs.get((key, arm, k))
                if not accs:
                    continue
                _, (mean, low, high) = acc_cell(accs)
                off = (i - len(arms) / 2) * 0.03
                xs.append(j + off)
                ms.append(100 * mean)
                lo.append(100 * (mean - low) if math.isfinite(low) else 0)
                hi.append(100 * (high - mean) if math.isfinite(high) else 0)
            if xs:  # an arm run at only some k gets markers, no line across the gaps
                style = ("-" if arm in ("target_only", "finetune") else "--") if len(
                    xs) == len(ks) else ""
                ax.errorbar(xs, ms, yerr=[lo, hi], fmt="o" + style, ms=3, capsize=2,
                            label=arm, lw=2 if arm in ("target_only", "finetune") else 1)
        ax.set_xticks(range(len(ks)), [f"k={k}" for k in ks])
        ax.set_xlabel("labeled target examples per class")
        ax.set_ylabel("target test accuracy (%)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


def plot_gains(runs: dict, groups: dict[str, str], ks: tuple[str, ...], path: Path,
               over: str = "episodes") -> None:
    """Each arm's gain over `target_only` (paired, 95% CI) per k: the quantity the verdict
    reads, which the accuracy plot's unpaired intervals hide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in arms_of(runs) if a != "target_only"]
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], groups.items(), strict=True):
        for i, arm in enumerate(arms):
            for j, k in enumerate(ks):
                g = gap(runs.get((key, arm, k), {}), runs.get((key, "target_only", k), {}))
                if g is None:
                    continue
                m, lo, hi = (-100 * g[f] for f in ("ntg_mean", "ntg_ci_high", "ntg_ci_low"))
                ax.errorbar(j + (i - (len(arms) - 1) / 2) * 0.12, m, yerr=[[m - lo], [hi - m]],
                            fmt="o", color=f"C{i + 1}", capsize=3,
                            label=arm if j == 0 else None)
        ax.axhline(0, color="k", lw=1)
        ax.set_xticks(range(len(ks)), [f"k={k}" for k in ks])
        ax.set_xlim(-0.5, len(ks) - 0.5)
        ax.set_ylabel(f"gain over target_only (points), paired by {over[:-1]}")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


def arms_of(runs: dict) -> list[str]:
    """target_only first, then the other arms present, by name."""
    return ["target_only", *sorted({a for _, a, _ in runs} - {"target_only"})]


def main(root: Path | None = None) -> None:
    root = root or (Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs")
    curves, new = collect(root / "curves"), collect(root / "new_classes")
    lenet = collect(root / "new_classes_lenet")
    select = collect(root / "new_classes_select")
    arms, new_arms = arms_of(curves), arms_of(new)
    rows: list[dict] = []
    md = "## Accuracy vs k (curves)\n" + table(curves, DIRECTIONS, arms, KS, rows, "curves")
    md += "\n## One-shot / few-shot on new classes (MLP source, first design)\n" + table(
        new, NEW, new_arms, ("1", "5"), rows, "new_classes")
    md += ("\n## One-shot / few-shot on new classes (LeNet source, 10 episodes, second design)\n"
           + table(lenet, NEW, arms_of(lenet), ("1", "5"), rows, "new_classes_lenet",
                   over="episodes"))
    md += ("\n## One-shot / few-shot on new classes (LeNet source, 30 fresh episodes, head chosen "
           "on source classes: third design)\n"
           + table(select, NEW, arms_of(select), ("1", "5"), rows, "new_classes_select",
                   over="episodes"))
    atomic_write_text(HERE / "results.md", md)
    buf = io.StringIO()
    fields = sorted({k for r in rows for k in r},
                    key=lambda f: (f not in ("grid", "group", "arm", "k"), f))
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(HERE / "results.csv", buf.getvalue())
    plot(curves, DIRECTIONS, arms, KS, HERE / "curves.png")
    plot(new, NEW, new_arms, ("1", "5"), HERE / "new_classes.png")
    if lenet:
        plot(lenet, NEW, arms_of(lenet), ("1", "5"), HERE / "new_classes_lenet.png")
    if select:
        plot(select, NEW, arms_of(select), ("1", "5"), HERE / "new_classes_select.png")
        plot_gains(select, NEW, ("1", "5"), HERE / "new_classes_select_gain.png")
    print(md)


if __name__ == "__main__":
    main()
