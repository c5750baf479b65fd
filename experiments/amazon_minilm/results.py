"""Tables and a plot of the frozen-MiniLM study (issue 23) from its runs' summary.json files.

Reads `<runs>/<kind>/<source>_<target>/<method>/seed<s>/summary.json` (run.sh's layout,
kind `frozen`; gpu.sh's fine-tuned runs: `finetune`);
only completed runs of pairs where all three methods finished every seed are reported (an
unfinished pair is listed as such, never averaged). Writes `<out>/results.md` (per pair and
the average over the finished pairs: dann - source_only paired by seed, 95% t intervals;
target_only as the ceiling), `<out>/per_seed.json` and `<out>/accuracy.png`.

Usage: .venv/bin/python experiments/amazon_minilm/results.py [runs dir] [out dir] [kind]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from jtl.measures.stats import mean_ci as ci  # mean and 95% t interval

METHODS = ("source_only", "dann", "target_only")
PRODUCTS = ("books", "dvd", "electronics", "kitchen")
SHORT = {"books": "B", "dvd": "D", "electronics": "E", "kitchen": "K"}
METRICS = {"final": "target/test/accuracy", "val": "selected/val/target/test/accuracy",
           "oracle": "selected/oracle/target/test/accuracy"}


def head_of(runs: Path, kind: str) -> str:
    """The runs' neck in words (from a run's saved config): what the head sits on."""
    from omegaconf import OmegaConf

    cfg = next(runs.glob(f"{kind}/*/*/seed*/.hydra/config.yaml"), None)
    neck = None if cfg is None else OmegaConf.load(cfg).get("neck")
    return "linear head" if not neck else f"bottleneck {neck['bottleneck_dim']} + linear head"


def load(runs: Path, kind: str) -> dict[str, dict[str, dict[int, dict]]]:
    """pair -> method -> seed -> summary (completed runs only)."""
    out: dict[str, dict[str, dict[int, dict]]] = {}
    for f in sorted(runs.glob(f"{kind}/*/*/seed*/summary.json")):
        s = json.loads(f.read_text())
        if s.get("status") != "completed":
            continue
        pair, method = f.parts[-4], f.parts[-3]
        out.setdefault(pair, {}).setdefault(method, {})[int(f.parent.name[4:])] = s
    return out


def fmt(m: float, lo: float, hi: float) -> str:
    return f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def main(runs: Path, out: Path, kind: str = "frozen") -> None:
    data = load(runs, kind)
    pairs = [f"{s}_{t}" for s in PRODUCTS for t in PRODUCTS if s != t]
    seeds = sorted({k for p in data.values() for m in p.values() for k in m})
    done = [p for p in pairs if p in data and all(
        sorted(data[p].get(m, {})) == seeds for m in METHODS)]
    acc = {p: {m: {n: np.array([100 * data[p][m][s][key] for s in seeds])
                   for n, key in METRICS.items()} for m in METHODS} for p in done}
    title = f"{'Frozen' if kind == 'frozen' else 'Fine-tuned'} ({head_of(runs, kind)})"
    lines = [f"# {title}: all-MiniLM-L6-v2, raw Amazon reviews ({len(done)} of 12 pairs, "
             f"seeds {seeds})", "",
             "Target test accuracy (%), mean over seeds. `final`: the last step; `val`: the "
             "checkpoint chosen by source validation accuracy (target_only: by target "
             "validation, its labeled domain); `oracle`: chosen by target test accuracy, an "
             "upper bound for reference, never a result. Gains: dann - source_only, paired by "
             "seed, 95% t interval (df = seeds - 1).", "",
             "| pair | source_only final | dann final | dann - so (final) | source_only val | "
             "dann val | dann - so (val) | target_only final (ceiling) | so oracle | "
             "dann oracle |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in done:
        a = acc[p]
        s, t = p.split("_")
        lines.append(
            f"| {SHORT[s]}->{SHORT[t]} | {a['source_only']['final'].mean():.1f} | "
            f"{a['dann']['final'].mean():.1f} | "
            f"{fmt(*ci(a['dann']['final'] - a['source_only']['final']))} | "
            f"{a['source_only']['val'].mean():.1f} | {a['dann']['val'].mean():.1f} | "
            f"{fmt(*ci(a['dann']['val'] - a['source_only']['val']))} | "
            f"{a['target_only']['final'].mean():.1f} | "
            f"{a['source_only']['oracle'].mean():.1f} | {a['dann']['oracle'].mean():.1f} |")
    summary = {}
    if done:
        avg = {m: {n: np.mean([acc[p][m][n] for p in done], axis=0) for n in METRICS}
               for m in METHODS}  # per seed, the average over the finished pairs
        lines.append(
            f"| **average** | {avg['source_only']['final'].mean():.1f} | "
            f"{avg['dann']['final'].mean():.1f} | "
            f"{fmt(*ci(avg['dann']['final'] - avg['source_only']['final']))} | "
            f"{avg['source_only']['val'].mean():.1f} | {avg['dann']['val'].mean():.1f} | "
            f"{fmt(*ci(avg['dann']['val'] - avg['source_only']['val']))} | "
            f"{avg['target_only']['final'].mean():.1f} | "
            f"{avg['source_only']['oracle'].mean():.1f} | {avg['dann']['oracle'].mean():.1f} |")
        gains = np.array([(acc[p]["dann"]["final"] - acc[p]["source_only"]["final"]).mean()
                          for p in done])
        gap = np.array([(acc[p]["target_only"]["final"] - acc[p]["source_only"]["final"]).mean()
                        for p in done])
        lines += ["", f"Average row: each seed's mean over the {len(done)} pairs, then paired "
                  "by seed. Across pairs (each pair's mean gain, t interval over pairs, "
                  f"df = {len(done) - 1}): dann - source_only {fmt(*ci(gains))}; "
                  f"dann ahead on {int((gains > 0).sum())} of {len(done)} pairs. "
                  f"target_only - source_only (the gap a method could close): "
                  f"{fmt(*ci(gap))}."]
        summary = {p: {m: {n: acc[p][m][n].tolist() for n in METRICS} for m in METHODS}
                   for p in done}
        plot(acc, done, out / "accuracy.png", title)
    missing = [p for p in pairs if p not in done]
    if missing:
        lines += ["", f"Not finished (not reported): {', '.join(missing)}."]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "per_seed.json").write_text(json.dumps({"seeds": seeds, "accuracy_percent": summary},
                                                  indent=1))
    print("\n".join(lines))


def plot(acc: dict, done: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(done) + 2), 3.6))
    x = np.arange(len(done))
    for i, m in enumerate(METHODS):
        vals = np.array([acc[p][m]["final"] for p in done])  # (pairs, seeds)
        ax.bar(x + (i - 1) * 0.27, vals.mean(1), 0.27, label=m,
               yerr=vals.std(1, ddof=1) if vals.shape[1] > 1 else None, capsize=2)
    ax.set_xticks(x, [f"{SHORT[p.split('_')[0]]}->{SHORT[p.split('_')[1]]}" for p in done])
    lo = min(acc[p][m]["final"].min() for p in done for m in METHODS)
    ax.set_ylim(max(0, lo - 5), 100)
    ax.set_ylabel("target test accuracy (%)")
    ax.set_title(f"all-MiniLM-L6-v2, {title} (mean-pooled, 128 tokens): final step, "
                 "±1 sd over seeds", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else here / "runs",
         Path(sys.argv[2]) if len(sys.argv) > 2 else here / "results",
         sys.argv[3] if len(sys.argv) > 3 else "frozen")
