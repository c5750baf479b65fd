"""One table over every run of a sweep: the library behind `python -m jtl.report <dir>`.

Walks `<dir>` for `summary.json` (one per run), merges the sibling `measures.json` if any, and
reads the run's composed config, flattened to dotted keys (`method.name`, `target.per_class`,
`seed`). Runs are grouped by the config keys that vary across them (never `seed`, nor the keys
that do not change a result, `jtl.rundir.PRESENTATION_KEYS`: `hydra.*`, `paths.*`,
`trainer.progress`, ...; `init_from` only by whether it is set, since it names a different
run dir per seed) or by `by`; each metric gets its mean and 95% Student-t interval over the
group's *seeds*: runs of one seed (a re-run, a budget variant grouped by `--by`) are averaged
first, since they are not independent samples, and `n` counts distinct seeds (a warning names
groups with more runs than seeds). `write_report` prints nothing: it writes
`<dir>/report.md`, `<dir>/report.csv` and a figure of one metric (`plot_groups`: method on the
x axis, one panel per source -> target).

Bounded quantities (accuracies, errors in [0, 1], PAD in [0, 2], NTG and gains in [-1, 1];
`jtl.measures.stats.bounds`) are shown in report.md and the plot with their interval clipped
to those bounds, written `mean [low, high]` where clipping changed it; report.csv keeps the
raw Student-t ends so that the table can be recomputed.

`ntg=True` adds negative transfer per group through `jtl.results.baselines`, the
implementation `jtl.measure measure=[ntg]` uses (same baselines, same seed pairing, same
numbers): NTG against target_only on the same target labels for runs that read target
labels; adaptation gain against source_only and NTG against the zero-label (chance) baseline
for runs that read none. The references are looked up under `<dir>` and the baselines cache;
the report trains nothing and names what is missing.

Runs whose summary status is not "completed" (failed, or still running) are skipped and
counted.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jtl import rundir
from jtl.errors import JtlError
from jtl.measures import ntg as ntg_math
from jtl.measures.stats import clip_ci, mean_ci
from jtl.results.baselines import (
    DEFAULT_METRIC,
    BaselineCache,
    MissingBaselineError,
    NtgOptions,
    TransferRun,
    compare,
    load_transfer_run,
)
from jtl.rundir import atomic_savefig, atomic_write_text
from jtl.train.selection import missing_choices

# Never grouping keys: the seed is what we average over; the rest never change a result.
IGNORED_KEYS = frozenset({"seed"})
# Summary entries that are numbers but not results.
NON_METRICS = frozenset({"seed", "step", "steps_per_call", "num_params", "num_classes"})
NTG_HEADER = "NTG (95% CI)"
GAIN_HEADER = "adaptation gain vs source_only (95% CI)"


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
        """One value per seed: the mean of that seed's runs (a run without a seed counts
        alone)."""
        by_seed: dict[Any, list[float]] = {}
        for i, r in enumerate(self.runs):
            if metric in r.metrics:
                by_seed.setdefault(("run", i) if r.seed is None else r.seed,
                                   []).append(r.metrics[metric])
        return [float(np.mean(v)) for v in by_seed.values()]

    @property
    def n_seeds(self) -> int:
        """Distinct seeds (a run without a seed counts alone): the `n` of the intervals."""
        return len({("run", i) if r.seed is None else r.seed for i, r in enumerate(self.runs)})


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
    flat.pop("inputs.init_from", None)  # the init run's checkpoint hash: one per seed
    return flat


def load_runs(root: Path, warnings: list[str] | None = None
              ) -> tuple[list[Run], Counter[str]]:
    """Completed runs under `root` (also those reached through a symlink), and a count of the
    skipped ones by status. A run whose saved config is damaged is skipped, with a line in
    `warnings` naming it."""
    runs: list[Run] = []
    skipped: Counter[str] = Counter()
    for run_dir in sorted(d for d in rundir.walk_dirs(root) if (d / rundir.SUMMARY).is_file()):
        summary = rundir.read_summary(run_dir)
        if summary is None:
            skipped[f"unreadable {rundir.SUMMARY}"] += 1
            continue
        status = str(summary.get("status", "unknown"))
        if status != "completed":
            skipped[status] += 1
            continue
        metrics = {k: x for k, v in summary.items()
                   if _is_metric(k) and (x := _as_number(v)) is not None}
        metrics.update(missing_choices(run_dir, summary))  # the same selection rules
        measures, steps = rundir.read_measures(run_dir)
        stale = sorted(k for k, s in steps.items() if s != summary.get("step"))
        for k, v in measures.items():
            x = _as_number(v)
            if x is not None and _is_metric(k):
                metrics[k if k not in metrics else f"measures/{k}"] = x
        try:
            config = _load_config(run_dir)
        except rundir.DamagedConfigError as e:
            skipped[f"damaged {rundir.CONFIG}"] += 1
            if warnings is not None:
                warnings.append(f"{run_dir}: skipped, {e}")
            continue
        if not config and "method" in summary:  # no Hydra config: fall back on the summary
            config = {"method.name": summary["method"]}
        seed = config.get("seed", summary.get("seed"))
        runs.append(Run(run_dir, config, metrics, None if seed is None else int(seed), stale))
    return runs, skipped


def _key_order(key: str) -> tuple[str, bool, str]:
    """Alphabetical, except that `x.name` leads the other `x.*` keys (method.name first)."""
    prefix, _, last = key.rpartition(".")
    return prefix, last != "name", last


def _ignored(key: str, ignore: Sequence[str]) -> bool:
    return key in IGNORED_KEYS or key in ignore or any(
        key == p or key.startswith(p + ".") for p in rundir.PRESENTATION_KEYS)


def varying_keys(runs: Sequence[Run], ignore: Sequence[str] = ()) -> list[str]:
    """Config keys with more than one value across runs (a missing key counts as a value)."""
    keys = sorted({k for r in runs for k in r.config}, key=_key_order)
    out = []
    for k in keys:
        if _ignored(k, ignore):
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


def ntg_columns(groups: Sequence[Group], keys: Sequence[str], root: Path, opts: NtgOptions,
                warn: list[str]) -> list[dict[str, Any]]:
    """Each group's negative-transfer values (`jtl.results.baselines.compare`, the keys of
    measures.json: `ntg_mean`, `ntg_adaptation_gain_mean`, `ntg_zero_label_mean`, ...).

    Groups of target_only baselines say so; a group whose references are missing says which
    (and the warning how to train them); two runs of one seed in a group are an error."""
    cache = BaselineCache(opts.cache_dir(root), search=[root], launch=False)
    out: list[dict[str, Any]] = []
    for g in groups:
        loaded = [load_transfer_run(r.path, opts.metric) for r in g.runs]
        members = [t for t in loaded if isinstance(t, TransferRun)]
        if not members:
            out.append({"ntg_verdict": "baseline" if all(
                t == "a target_only baseline, not a transfer run" for t in loaded)
                else "; ".join(sorted(set(map(str, loaded))))})
            continue
        try:
            out.append(compare(members, cache, opts).values)
        except MissingBaselineError as e:
            warn.append(f"NTG for {_label(keys, g.key)}: {e}")
            out.append({"ntg_verdict": "missing baseline (see warnings)"})
    return out


def _label(keys: Sequence[str], key: tuple[Any, ...]) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in zip(keys, key, strict=True)) or "all"


def _fmt_value(v: Any) -> str:
    return "null" if v is None else str(v)


def fmt_ci(mean: float, low: float, high: float, n: int, metric: str = "") -> str:
    """`mean ± half-width`; `mean [low, high]` where `metric`'s bounds clipped the interval."""
    if n == 0:
        return ""
    if not math.isfinite(high - low):
        return f"{mean:.4g} (n=1)" if n == 1 else f"{mean:.4g}"
    lo, hi = clip_ci(low, high, metric)
    if (lo, hi) != (low, high):
        return f"{mean:.4g} [{lo:.4g}, {hi:.4g}]"
    return f"{mean:.4g} ± {(high - low) / 2:.2g}"


def _comparison_cell(row: Mapping[str, Any], prefix: str) -> str:
    if f"{prefix}_mean" not in row:
        return str(row.get(f"{prefix}_verdict", ""))
    ci = fmt_ci(row[f"{prefix}_mean"], row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"],
                row[f"{prefix}_n"], f"{prefix}_mean")
    return f"{ci} {row[f'{prefix}_verdict']}"


def _ntg_cells(row: Mapping[str, Any]) -> list[str]:
    """The NTG cell (against target_only on the same labels, or, stated as such, against
    the zero-label baseline) and the adaptation-gain cell."""
    if row.get("ntg_baseline") == ntg_math.NO_LABELS:
        chance = row.get("ntg_zero_label_err")
        what = "zero-label baseline" + (f" (chance err {chance:.3g})" if chance else "")
        return [f"{what}: {_comparison_cell(row, ntg_math.ZERO_LABEL)}",
                _comparison_cell(row, ntg_math.GAIN)]
    return [_comparison_cell(row, ntg_math.NTG), ""]


@dataclass
class Report:
    keys: list[str]
    metrics: list[str]
    rows: list[dict[str, Any]]
    markdown: str
    n_runs: int
    skipped: Counter[str]
    warnings: list[str]
    groups: list[Group] = field(default_factory=list)  # in the order of `rows`


def build_report(
    root: str | Path,
    by: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    ntg: bool = False,
    ignore: Sequence[str] = (),
    ntg_metric: str = DEFAULT_METRIC,
    baselines_dir: str | Path | None = None,
) -> Report:
    """Aggregate the runs under `root` into rows (one per group) and a markdown table."""
    root = Path(root)
    why = rundir.dir_problem(root)
    if why is not None or not root.is_dir():
        raise JtlError(f"{root}: {why or 'not a directory'}; pass a multirun (or runs) dir")
    warnings: list[str] = []
    runs, skipped = load_runs(root, warnings)
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
    warnings += [
        f"{r.path}: measures {', '.join(r.stale[:5])} were taken at another checkpoint step "
        "than its summary's; measure it again" for r in runs if r.stale]
    rows: list[dict[str, Any]] = []
    for g in groups:
        row: dict[str, Any] = {k: v for k, v in zip(keys, g.key, strict=True)}
        row["n"] = g.n_seeds
        if len(g.runs) > g.n_seeds:
            warnings.append(f"{_label(keys, g.key)}: {len(g.runs)} runs of {g.n_seeds} seeds; "
                            "runs of one seed are averaged before the interval (n counts "
                            "seeds)")
        for m in metrics:
            vals = g.values(m)
            mean, low, high = mean_ci(vals) if vals else (math.nan, math.nan, math.nan)
            row.update({f"{m}/mean": mean, f"{m}/ci_low": low, f"{m}/ci_high": high,
                        f"{m}/n": len(vals)})
        rows.append(row)
    if ntg:
        if ntg_metric not in available:
            raise JtlError(f"--ntg needs '{ntg_metric}' in the summaries")
        opts = NtgOptions(metric=ntg_metric,
                          baselines_dir=None if baselines_dir is None else str(baselines_dir))
        for row, extra in zip(rows, ntg_columns(groups, keys, root, opts, warnings), strict=True):
            row.update(extra)
    md = to_markdown(rows, keys, metrics, ntg)
    return Report(keys, metrics, rows, md, len(runs), skipped, warnings, groups)


def to_markdown(rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
                metrics: Sequence[str], ntg: bool) -> str:
    """Mean ± half-width of the 95% interval per metric (clipped to its bounds: module doc);
    `n` counts the group's distinct seeds."""
    head = [*(keys or ["group"]), "n", *metrics] + ([NTG_HEADER, GAIN_HEADER] if ntg else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        cells = [_fmt_value(row[k]) for k in keys] if keys else ["all"]
        cells.append(str(row["n"]))
        for m in metrics:
            cells.append(fmt_ci(row[f"{m}/mean"], row[f"{m}/ci_low"], row[f"{m}/ci_high"],
                                row[f"{m}/n"], m))
        if ntg:
            cells += _ntg_cells(row)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return repr(float(v))
    return v


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """All columns, floats at full precision (repr) and intervals raw (not clipped), so the
    table can be recomputed exactly."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_csv_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def error_bars(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(means, (2, n) distances below and above) of the 95% CIs clipped to the metric's
    bounds; none (0) where n = 1."""
    means = np.array([row[f"{metric}/mean"] for row in rows], dtype=np.float64)
    ends = [clip_ci(row[f"{metric}/ci_low"], row[f"{metric}/ci_high"], metric) for row in rows]
    lows, highs = (np.array(e, dtype=np.float64) for e in zip(*ends, strict=True))
    finite = np.isfinite(lows) & np.isfinite(highs)
    return means, np.where(finite, np.stack([means - lows, highs - means]), 0.0)


METHOD_KEY = "method.name"
TRANSFER_KEY = "transfer.name"  # an inductive transfer recipe (finetune, linear_probe, ...)
DIRECTION_KEYS = ("source.name", "target.name")


def direction(config: Mapping[str, Any]) -> str:
    """'mnist → usps' from a run's flat config ('' when it names no domains)."""
    s, t = (config.get(k) for k in DIRECTION_KEYS)
    return "" if s is None or t is None else f"{s} → {t}"


def method_label(config: Mapping[str, Any]) -> str:
    """A run's method as the figure names it: `method.name`, with its transfer recipe if any
    (`target_only+finetune`)."""
    recipe = config.get(TRANSFER_KEY)
    return "+".join(str(x) for x in (config.get(METHOD_KEY), recipe)
                    if x is not None and x != "none")


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key by its last component (the group for `x.name`), or by as many as tell
    it from the others."""
    out = {}
    for k in keys:
        parts = k.split(".")
        first = 2 if parts[-1] == "name" and len(parts) > 1 else 1
        for depth in range(first, len(parts) + 1):
            tail = ".".join(parts[-depth:])
            if not any(o != k and (o == tail or o.endswith("." + tail)) for o in keys):
                break
        out[k] = tail.removesuffix(".name")
    return out


def _short_value(v: Any) -> str:
    text = "none" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
    return text if len(text) <= 24 else text[:21] + "..."


def group_value(group: Group, describe: Any) -> str:
    """`describe(config)` of a group's runs; ' | '-joined when `by` pooled several."""
    return " | ".join(sorted({describe(r.config) for r in group.runs}))


@dataclass
class Panel:
    """One panel of the report figure: a source -> target pair and its bars, by method."""

    title: str
    rows: list[int]  # indices into Report.rows / Report.groups, in bar order
    labels: list[str]  # x tick labels: the method, then only keys that differ within it
    methods: list[str]


def plot_layout(rep: Report) -> list[Panel]:
    """Panels (one per source -> target, in the groups' order) of bars sorted by method
    (`method_label`).

    A bar is labelled by its method and only the varying keys that tell it from other bars
    of the same method in its panel, shortened to their last component (`per_class=10`), so
    a method's own hyper-parameters (present for it alone) never crowd its label."""
    by_panel: dict[str, list[int]] = {}
    for i, g in enumerate(rep.groups):
        by_panel.setdefault(group_value(g, direction), []).append(i)
    label_keys = [k for k in rep.keys if k not in (METHOD_KEY, TRANSFER_KEY, *DIRECTION_KEYS)]
    panels = []
    for title, idx in by_panel.items():
        methods = {i: group_value(rep.groups[i], method_label) for i in idx}
        shown: dict[str, list[str]] = {}  # method -> keys differing among its bars
        for m in set(methods.values()):
            same = [rep.groups[i].key for i in idx if methods[i] == m]
            shown[m] = [k for j, k in enumerate(rep.keys) if k in label_keys
                        and len({json.dumps(key[j], default=str) for key in same}) > 1]
        short = _short_keys(sorted({k for keys in shown.values() for k in keys}))
        labels = {}
        for i in idx:
            key = dict(zip(rep.keys, rep.groups[i].key, strict=True))
            labels[i] = "\n".join([methods[i], *(f"{short[k]}={_short_value(key[k])}"
                                                  for k in shown[methods[i]])]).strip()
        order = sorted(idx, key=lambda i: (methods[i], _sort_key(rep.groups[i].key)))
        panels.append(Panel(title, order, [labels[i] for i in order],
                            [methods[i] for i in order]))
    return panels


def plot_groups(rep: Report, metric: str, path: Path) -> Path | None:
    """`metric`'s mean and 95% CI (clipped to its bounds) per group: method on the x axis,
    one panel per source -> target, `n` (distinct seeds) on each bar."""
    if not rep.rows or f"{metric}/mean" not in rep.rows[0] or not rep.groups:
        return None
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    means, err = error_bars(rep.rows, metric)
    panels = plot_layout(rep)
    methods = sorted({m for p in panels for m in p.methods})
    cmap = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    colour = {m: cmap(i % cmap.N) for i, m in enumerate(methods)}
    widths = [max(len(p.rows), 1) for p in panels]
    lines = max(label.count("\n") + 1 for p in panels for label in p.labels)
    fig = Figure(figsize=(max(4.0, 0.6 * sum(widths) + 1.0 * len(panels) + 0.8),
                          3.6 + 0.25 * lines), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False,
                        width_ratios=widths)[0]
    for ax, p in zip(axes, panels, strict=True):
        x = np.arange(len(p.rows))
        ax.bar(x, means[p.rows], yerr=err[:, p.rows], capsize=4, alpha=0.85,
               color=[colour[m] for m in p.methods])
        for xi, i in zip(x, p.rows, strict=True):
            ax.annotate(f"n={rep.rows[i][f'{metric}/n']}", (xi, 0), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7,
                        color="black")
        ax.set_xticks(x, p.labels, fontsize=8,
                      rotation=30 if len(p.rows) > 4 else 0, ha="right" if len(p.rows) > 4
                      else "center")
        ax.set_title(p.title or "all runs", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.axhline(0, color="black", linewidth=0.6)
    axes[0].set_ylabel(f"{metric}\n(mean, 95% CI over seeds)")
    return atomic_savefig(fig, path)


def plot_name(metric: str) -> str:
    return "report_" + "".join(c if c.isalnum() else "_" for c in metric) + ".png"


def write_report(rep: Report, root: str | Path, plot_metric: str = DEFAULT_METRIC) -> list[str]:
    """report.md, report.csv and the figure of `plot_metric` into `root`; their names."""
    root = Path(root)
    atomic_write_text(root / "report.md", rep.markdown)
    atomic_write_text(root / "report.csv", to_csv(rep.rows))
    plot = plot_groups(rep, plot_metric, root / plot_name(plot_metric))
    return ["report.md", "report.csv"] + ([plot.name] if plot else [])
