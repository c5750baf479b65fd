"""Result tables of the negative-transfer study from its runs' summary.json/measures.json.

    python experiments/negative_transfer/tables.py experiments/negative_transfer/runs

Writes results.md, results_ntg.csv, results_pad.csv and ntg.png (the MLP's NTG by target
size) beside this file; LeNet rows (run_lenet.sh) are added when those runs exist. Means and
95% Student-t intervals over seeds come from `jtl.report` (the NTG interval is that of the
per-seed gaps `ntg_gap`, which is how `jtl.measures.ntg` computes it; the script checks they
agree).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from jtl.measures.ntg import verdict
from jtl.results.report import build_report
from jtl.rundir import atomic_savefig, atomic_write_text

HERE = Path(__file__).resolve().parent
PERMUTED = json.dumps([{"name": "permute_labels", "seed": 1}], sort_keys=True)


def source_label(shifts: Any) -> str:
    return "MNIST, permuted labels" if shifts == PERMUTED else "MNIST" if shifts == "[]" else str(
        shifts)


def fmt(mean: float, low: float, high: float, signed: bool = False) -> str:
    s = f"{mean:+.3f}" if signed else f"{mean:.3f}"
    if not math.isfinite(low):
        return s
    return f"{s} [{low:+.3f}, {high:+.3f}]" if signed else f"{s} ± {(high - low) / 2:.3f}"


def ci(row: dict[str, Any], metric: str) -> tuple[float, float, float]:
    return row[f"{metric}/mean"], row[f"{metric}/ci_low"], row[f"{metric}/ci_high"]


# finetune/<variant> -> how the fine-tuned model was initialised, in table order.
VARIANTS = {
    "mnist": "MNIST",
    "mnist_new_head": "MNIST, new head",
    "mnist_new_head_same_seed": "MNIST, new head (source's seed)",
    "permuted": "MNIST, permuted labels",
    "permuted_new_head": "MNIST, permuted labels, new head",
    "permuted_new_head_same_seed": "MNIST, permuted labels, new head (source's seed)",
}


def ntg_table(runs: Path, model: str) -> tuple[list[dict[str, Any]], str]:
    rows, lines = [], [
        "| model | source (fine-tune init) | target per class | n | fine-tuned acc "
        "| target_only acc | NTG [95% CI] | verdict |", "|---|---|---|---|---|---|---|---|"]
    for variant, label in VARIANTS.items():
        folder = runs / "finetune" / variant
        if not folder.is_dir():
            continue
        rep = build_report(folder, by=["target.per_class"],
                           metrics=["target/test/accuracy", "ntg_baseline_err", "ntg_gap",
                                    "ntg_mean"])
        for r in sorted(rep.rows, key=lambda r: int(r["target.per_class"])):
            mean, low, high = ci(r, "ntg_gap")
            assert abs(mean - r["ntg_mean/mean"]) < 1e-9, "ntg_gap and ntg_mean disagree"
            b_mean, b_low, b_high = ci(r, "ntg_baseline_err")
            row = {"model": model, "source": label, "per_class": r["target.per_class"],
                   "n": r["n"], "finetune_acc": r["target/test/accuracy/mean"],
                   "finetune_acc_ci_low": r["target/test/accuracy/ci_low"],
                   "finetune_acc_ci_high": r["target/test/accuracy/ci_high"],
                   "target_only_acc": 1 - b_mean, "target_only_acc_ci_low": 1 - b_high,
                   "target_only_acc_ci_high": 1 - b_low,
                   "ntg": mean, "ntg_ci_low": low, "ntg_ci_high": high,
                   "verdict": verdict(low, high)}
            rows.append(row)
            lines.append(f"| {model} | {label} | {row['per_class']} | {row['n']} | "
                         f"{fmt(*ci(r, 'target/test/accuracy'))} | "
                         f"{fmt(1 - b_mean, 1 - b_high, 1 - b_low)} | "
                         f"{fmt(mean, low, high, signed=True)} | {row['verdict']} |")
    return rows, "\n".join(lines) + "\n"


def pad_table(runs: Path, model: str) -> tuple[list[dict[str, Any]], str]:
    metrics = ["pad", "domain_acc", "confusion_loss", "leep", "logme", "source/test/accuracy",
               "target/test/accuracy"]
    lines = ["| model | method | source | n | PAD (MNIST vs USPS test features) | domain acc | "
             "confusion loss | LEEP | LogME | source test acc | USPS test acc |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for method, folder in (("source_only", runs / "source"), ("dann", runs / "dann")):
        if not folder.is_dir():
            continue
        rep = build_report(folder, by=["source.shifts"], metrics=metrics)
        for r in rep.rows:
            row = {"model": model, "method": method, "source": source_label(r["source.shifts"]),
                   "n": r["n"]}
            for m in metrics:
                row.update({m: r[f"{m}/mean"], f"{m}_ci_low": r[f"{m}/ci_low"],
                            f"{m}_ci_high": r[f"{m}/ci_high"]})
            rows.append(row)
            lines.append(f"| {model} | {method} | {row['source']} | {row['n']} | "
                         + " | ".join(fmt(*ci(r, m)) for m in metrics) + " |")
    return rows, "\n".join(lines) + "\n"


def plot_ntg(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    rows = [r for r in rows if "source's seed" not in r["source"]]  # the coupled-init control
    sources = list(dict.fromkeys(r["source"] for r in rows))
    for i, src in enumerate(sources):
        rs = sorted((r for r in rows if r["source"] == src), key=lambda r: r["per_class"])
        k = np.array([r["per_class"] for r in rs], dtype=float) * (1 + 0.05 * (i - 1.5))
        m = np.array([r["ntg"] for r in rs])
        err = np.array([[r["ntg"] - r["ntg_ci_low"], r["ntg_ci_high"] - r["ntg"]] for r in rs]).T
        ax.errorbar(k, m, yerr=err, marker="o", capsize=3, label=src)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    sizes = sorted({r["per_class"] for r in rows})
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labeled USPS examples per class")
    ax.set_ylabel("NTG = err(fine-tuned) - err(target_only)")
    ax.set_title("MLP; above 0: negative transfer (mean, 95% CI, 3 seeds)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    atomic_savefig(fig, path, dpi=100)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def main(argv: list[str]) -> int:
    runs = Path(argv[0] if argv else HERE / "runs")
    ntg_rows, ntg_md = ntg_table(runs, "mlp")
    pad_rows, pad_md = pad_table(runs, "mlp")
    plot_ntg(ntg_rows, HERE / "ntg.png")
    if (runs / "lenet" / "finetune").is_dir():
        rows, md = ntg_table(runs / "lenet", "lenet")
        ntg_rows += rows
        ntg_md += md.split("\n", 2)[2]
    if (runs / "lenet" / "source").is_dir():
        rows, md = pad_table(runs / "lenet", "lenet")
        pad_rows += rows
        pad_md += md.split("\n", 2)[2]
    md = "### Negative transfer gap\n\n" + ntg_md + "\n### Domain discrepancy\n\n" + pad_md
    atomic_write_text(HERE / "results.md", md)
    write_csv(ntg_rows, HERE / "results_ntg.csv")
    write_csv(pad_rows, HERE / "results_pad.csv")
    print(md, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
