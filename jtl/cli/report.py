"""`python -m jtl.report <dir>` / `jtl-report`: one table over every run of a sweep.

Walks `<dir>` for `summary.json` (one per run), merges the sibling `measures.json` if any, and
reads the run's composed config from `<run>/.hydra/config.yaml`, flattened to dotted keys
(`method.name`, `target.per_class`, `seed`). Runs are grouped by the config keys that vary
across them (never `seed`, `hydra.*` or `paths.*`; `init_from` only by whether it is set,
since it names a different run dir per seed) or by `--by`; each metric gets its mean and
95% Student-t interval over the group's runs (seeds). The table is printed as markdown and
written to `<dir>/report.md` and `<dir>/report.csv`, with a bar plot of one metric per group.

`--ntg` adds the negative transfer gap of each group against its baseline: the group trained
with `method.name=target_only` from scratch (no `init_from`) whose keys agree on everything
but the method, the source domain and the init/freeze keys. Runs are paired by seed; seeds
without a partner are left out with a warning.

Runs whose summary status is not "completed" (failed, or still running) are skipped and
counted.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jtl import rundir
from jtl.errors import JtlError
from jtl.measures.ntg import negative_transfer_gap
from jtl.measures.stats import mean_ci
from jtl.rundir import atomic_savefig, atomic_write_text

# Never grouping keys: the seed is what we average over; the rest are machine-specific.
IGNORED_KEYS = frozenset({"seed"})
IGNORED_PREFIXES = ("hydra.", "paths.")
# Summary entries that are numbers but not results.
NON_METRICS = frozenset({"seed", "step", "steps_per_call", "num_params"})
# Keys that may differ between a transfer run and its target_only baseline.
TRANSFER_PREFIXES = ("method.", "source.")
TRANSFER_KEYS = frozenset({"init_from", "load", "dont_load", "freeze"})
BASELINE_METHOD = "target_only"
DEFAULT_METRIC = "target/test/accuracy"


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    metrics: dict[str, float]
    seed: int | None
    # Measure keys taken at another checkpoint step than the summary's (stale values).
    stale: list[str] = field(default_factory=list)


@dataclass
class Group:
    key: tuple[Any, ...]
    runs: list[Run] = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        return [r.metrics[metric] for r in self.runs if metric in r.metrics]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become JSON strings so they can be grouped on."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list | tuple):
            out[key] = json.dumps(v, sort_keys=True, default=str)
        else:
            out[key] = v
    return out


def _as_number(v: Any) -> float | None:
    """Numbers (and the 'inf'/'nan' strings measures.json uses for them) -> float; else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str) and v.strip().lower() in {"inf", "-inf", "nan", "infinity",
                                                    "-infinity"}:
        return float(v)
    return None


def _is_metric(key: str) -> bool:
    return key not in NON_METRICS and not key.endswith("/step")


def _load_config(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / rundir.CONFIG).exists():
        return {}
    flat = flatten(rundir.load_config(run_dir) or {})
    if flat.get("init_from") is not None:
        flat["init_from"] = "set"
    return flat


def load_runs(root: Path) -> tuple[list[Run], Counter[str]]:
    """Completed runs under `root`, and a count of the skipped ones by status."""
    runs: list[Run] = []
    skipped: Counter[str] = Counter()
    for summary_path in sorted(root.rglob(rundir.SUMMARY)):
        run_dir = summary_path.parent
        summary = rundir.read_summary(run_dir)
        if summary is None:
            skipped["unreadable summary.json"] += 1
            continue
        status = str(summary.get("status", "unknown"))
        if status != "completed":
            skipped[status] += 1
            continue
        metrics = {k: x for k, v in summary.items()
                   if _is_metric(k) and (x := _as_number(v)) is not None}
        measures, steps = rundir.read_measures(run_dir)
        stale = sorted(k for k, s in steps.items() if s != summary.get("step"))
        for k, v in measures.items():
            x = _as_number(v)
            if x is not None and _is_metric(k):
                metrics[k if k not in metrics else f"measures/{k}"] = x
        config = _load_config(run_dir)
        if not config and "method" in summary:  # no Hydra config: fall back on the summary
            config = {"method.name": summary["method"]}
        seed = config.get("seed", summary.get("seed"))
        runs.append(Run(run_dir, config, metrics, None if seed is None else int(seed), stale))
    return runs, skipped


def _key_order(key: str) -> tuple[str, bool, str]:
    """Alphabetical, except that `x.name` leads the other `x.*` keys (method.name first)."""
    prefix, _, last = key.rpartition(".")
    return prefix, last != "name", last


def varying_keys(runs: Sequence[Run], ignore: Sequence[str] = ()) -> list[str]:
    """Config keys with more than one value across runs (a missing key counts as a value)."""
    keys = sorted({k for r in runs for k in r.config}, key=_key_order)
    out = []
    for k in keys:
        if k in IGNORED_KEYS or k in ignore or k.startswith(IGNORED_PREFIXES):
            continue
        values = {json.dumps(r.config.get(k), sort_keys=True, default=str) for r in runs}
        if len(values) > 1:
            out.append(k)
    return out


def _sort_key(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in key)


def group_runs(runs: Sequence[Run], keys: Sequence[str]) -> list[Group]:
    groups: dict[tuple[Any, ...], Group] = {}
    for r in runs:
        key = tuple(r.config.get(k) for k in keys)
        groups.setdefault(key, Group(key)).runs.append(r)
    return [groups[k] for k in sorted(groups, key=_sort_key)]


def default_metrics(runs: Sequence[Run]) -> list[str]:
    """Every metric any run reports, in first-seen order, with target test accuracy first."""
    seen: dict[str, None] = {}
    for r in runs:
        seen.update(dict.fromkeys(r.metrics))
    order = list(seen)
    if DEFAULT_METRIC in seen:
        order.remove(DEFAULT_METRIC)
        order.insert(0, DEFAULT_METRIC)
    return order


def _per_seed_error(group: Group, metric: str) -> dict[int, float]:
    """Seed -> 1 - accuracy, averaging duplicate seeds (possible when --by merges configs)."""
    per_seed: dict[int, list[float]] = defaultdict(list)
    for r in group.runs:
        if metric not in r.metrics:
            continue
        if r.seed is None:
            raise JtlError(f"run {r.path} has no seed in its config or summary; NTG pairs "
                           "runs by seed")
        per_seed[r.seed].append(1.0 - r.metrics[metric])
    return {s: float(np.mean(v)) for s, v in per_seed.items()}


def _is_baseline(group: Group) -> bool:
    """All runs are target_only from scratch (init_from unset): the NTG reference."""
    return all(r.config.get("method.name") == BASELINE_METHOD and r.config.get("init_from") is None
               for r in group.runs)


def _target_part(group: Group, keys: Sequence[str]) -> tuple[Any, ...]:
    return tuple(v for k, v in zip(keys, group.key, strict=True)
                 if not k.startswith(TRANSFER_PREFIXES) and k not in TRANSFER_KEYS)


def ntg_columns(groups: Sequence[Group], keys: Sequence[str], metric: str,
                warn: list[str]) -> list[dict[str, Any]]:
    """NTG of each non-baseline group against its target_only baseline; blanks otherwise."""
    baselines: dict[tuple[Any, ...], list[Group]] = defaultdict(list)
    for g in groups:
        if _is_baseline(g):
            baselines[_target_part(g, keys)].append(g)
    out = []
    for g in groups:
        if _is_baseline(g):
            out.append({"ntg/verdict": "baseline"})
            continue
        matches = baselines.get(_target_part(g, keys), [])
        if len(matches) != 1:
            out.append({"ntg/verdict": "no target_only baseline" if not matches else
                        f"{len(matches)} target_only baselines match; group with --by"})
            continue
        transfer, base = _per_seed_error(g, metric), _per_seed_error(matches[0], metric)
        common = sorted(set(transfer) & set(base))
        unpaired = sorted(set(transfer) ^ set(base))
        if unpaired:
            warn.append(f"NTG for {_label(keys, g.key)}: seed(s) {unpaired} lack a partner "
                        f"run and are left out")
        if not common:
            out.append({"ntg/verdict": "no common seeds"})
            continue
        res = negative_transfer_gap({s: transfer[s] for s in common}, {s: base[s] for s in common})
        out.append({"ntg/mean": res["ntg_mean"], "ntg/ci_low": res["ntg_ci_low"],
                    "ntg/ci_high": res["ntg_ci_high"], "ntg/n": res["ntg_n"],
                    "ntg/verdict": res["ntg_verdict"]})
    return out


def _label(keys: Sequence[str], key: tuple[Any, ...]) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in zip(keys, key, strict=True)) or "all"


def _fmt_value(v: Any) -> str:
    return "null" if v is None else str(v)


def _fmt_ci(mean: float, low: float, high: float, n: int) -> str:
    if n == 0:
        return ""
    if not math.isfinite(high - low):
        return f"{mean:.4g} (n=1)" if n == 1 else f"{mean:.4g}"
    return f"{mean:.4g} ± {(high - low) / 2:.2g}"


@dataclass
class Report:
    keys: list[str]
    metrics: list[str]
    rows: list[dict[str, Any]]
    markdown: str
    n_runs: int
    skipped: Counter[str]
    warnings: list[str]


def build_report(
    root: str | Path,
    by: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    ntg: bool = False,
    ignore: Sequence[str] = (),
    ntg_metric: str = DEFAULT_METRIC,
) -> Report:
    """Aggregate the runs under `root` into rows (one per group) and a markdown table."""
    root = Path(root)
    if not root.is_dir():
        raise JtlError(f"{root} is not a directory; pass a multirun (or runs) dir")
    runs, skipped = load_runs(root)
    if not runs:
        raise JtlError(f"no completed runs under {root} (looked for */{rundir.SUMMARY}; skipped "
                       f"{sum(skipped.values())} not completed)")
    all_keys = sorted({k for r in runs for k in r.config})
    if by:
        unknown = [k for k in by if k not in all_keys]
        if unknown:
            raise JtlError(f"--by {unknown}: no run has these config keys. Varying keys: "
                           f"{varying_keys(runs, ignore)}")
        keys = list(by)
    else:
        keys = varying_keys(runs, ignore)
    available = default_metrics(runs)
    if metrics:
        unknown = [m for m in metrics if m not in available]
        if unknown:
            raise JtlError(f"--metric {unknown}: no run reports these. Available: {available}")
        metrics = list(metrics)
    else:
        metrics = available
    groups = group_runs(runs, keys)
    warnings: list[str] = [
        f"{r.path}: measures {', '.join(r.stale[:5])} were taken at another checkpoint step "
        "than its summary's; measure it again" for r in runs if r.stale]
    rows: list[dict[str, Any]] = []
    for g in groups:
        row: dict[str, Any] = {k: v for k, v in zip(keys, g.key, strict=True)}
        row["n"] = len(g.runs)
        for m in metrics:
            vals = g.values(m)
            mean, low, high = mean_ci(vals) if vals else (math.nan, math.nan, math.nan)
            row.update({f"{m}/mean": mean, f"{m}/ci_low": low, f"{m}/ci_high": high,
                        f"{m}/n": len(vals)})
        rows.append(row)
    if ntg:
        if not any(_is_baseline(g) for g in groups):
            raise JtlError("--ntg needs target_only runs trained from scratch (method="
                           f"{BASELINE_METHOD}, no init_from) under {root}; launch them with "
                           "the same target config and seeds")
        if ntg_metric not in available:
            raise JtlError(f"--ntg needs '{ntg_metric}' in the summaries")
        for row, extra in zip(rows, ntg_columns(groups, keys, ntg_metric, warnings), strict=True):
            row.update(extra)
    md = to_markdown(rows, keys, metrics, ntg)
    return Report(keys, metrics, rows, md, len(runs), skipped, warnings)


def to_markdown(rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
                metrics: Sequence[str], ntg: bool) -> str:
    """Mean ± half-width of the 95% interval per metric; `n` counts the group's runs."""
    head = [*(keys or ["group"]), "n", *metrics] + (["NTG (95% CI)"] if ntg else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        cells = [_fmt_value(row[k]) for k in keys] if keys else ["all"]
        cells.append(str(row["n"]))
        for m in metrics:
            cells.append(_fmt_ci(row[f"{m}/mean"], row[f"{m}/ci_low"], row[f"{m}/ci_high"],
                                 row[f"{m}/n"]))
        if ntg:
            if "ntg/mean" in row:
                ci = _fmt_ci(row["ntg/mean"], row["ntg/ci_low"], row["ntg/ci_high"],
                             row["ntg/n"])
                cells.append(f"{ci} {row['ntg/verdict']}")
            else:
                cells.append(row.get("ntg/verdict", ""))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return repr(float(v))
    return v


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """All columns, floats at full precision (repr), so the table can be recomputed exactly."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_csv_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def plot_groups(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], metric: str,
                path: Path) -> Path | None:
    """Bar per group of `metric` with its 95% CI as error bars (none where n = 1)."""
    if f"{metric}/mean" not in rows[0]:
        return None
    from matplotlib.figure import Figure

    means = np.array([row[f"{metric}/mean"] for row in rows])
    lows = np.array([row[f"{metric}/ci_low"] for row in rows])
    highs = np.array([row[f"{metric}/ci_high"] for row in rows])
    finite = np.isfinite(lows) & np.isfinite(highs)
    err = np.where(finite, np.stack([means - lows, highs - means]), 0.0)
    labels = [_label(keys, tuple(row[k] for k in keys)).replace(", ", "\n") for row in rows]
    fig = Figure(figsize=(max(4.0, 1.2 * len(rows) + 1.5), 4.5))
    ax = fig.subplots()
    ax.bar(np.arange(len(rows)), means, yerr=err, capsize=4, color="tab:blue", alpha=0.8)
    ax.set_xticks(np.arange(len(rows)), labels, fontsize=7)
    ax.set_ylabel(f"{metric} (mean, 95% CI)")
    ax.grid(axis="y", alpha=0.3)
    return atomic_savefig(fig, path)


def _plot_name(metric: str) -> str:
    return "report_" + "".join(c if c.isalnum() else "_" for c in metric) + ".png"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m jtl.report",
        description="Aggregate summary.json/measures.json of every run under DIR into a table "
                    "of mean ± 95%% CI over seeds, grouped by the config keys that vary.")
    p.add_argument("dir", type=Path, help="a multirun (sweep) or runs dir")
    p.add_argument("--by", nargs="+", action="extend", metavar="KEY",
                   help="group by these dotted config keys instead of the varying ones")
    p.add_argument("--metric", nargs="+", action="extend", metavar="NAME",
                   help="only these metrics (default: all)")
    p.add_argument("--ignore", nargs="+", action="extend", default=[], metavar="KEY",
                   help="config keys never to group by")
    p.add_argument("--ntg", action="store_true",
                   help="add the negative transfer gap against matching target_only runs")
    p.add_argument("--plot-metric", default=DEFAULT_METRIC,
                   help=f"metric of the bar plot (default {DEFAULT_METRIC})")
    args = p.parse_args(argv)
    try:
        rep = build_report(args.dir, by=args.by, metrics=args.metric, ntg=args.ntg,
                           ignore=args.ignore)
    except JtlError as e:
        print(f"jtl: error: {e}", file=sys.stderr)
        return 2
    n_skipped = sum(rep.skipped.values())
    status = ", ".join(f"{s}: {n}" for s, n in sorted(rep.skipped.items()))
    print(f"{rep.n_runs} completed runs in {len(rep.rows)} groups"
          + (f"; skipped {n_skipped} not completed ({status})" if n_skipped else ""))
    for w in rep.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(rep.markdown, end="")
    atomic_write_text(args.dir / "report.md", rep.markdown)
    atomic_write_text(args.dir / "report.csv", to_csv(rep.rows))
    plot = plot_groups(rep.rows, rep.keys, args.plot_metric, args.dir / _plot_name(
        args.plot_metric))
    written = ["report.md", "report.csv"] + ([plot.name] if plot else [])
    print(f"wrote {', '.join(written)} in {args.dir}")
    return 0
