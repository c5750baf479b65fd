"""Negative transfer end to end: each run's references, found or trained, then the gaps.

The one implementation behind both `python -m jtl.measure ... measure=[ntg]` and
`python -m jtl.report DIR --ntg`: both load runs with `load_transfer_run`, pair them with
`compare` against a `BaselineCache`, and so match the same baselines, refuse the same
duplicate seeds and give the same numbers. What is compared with what (`jtl.measures.ntg`):

* a run whose method reads target labels (`reads_target_labels`) -> `target_only` from
  scratch on the same target labels: equal `target` config (so the same `per_class` subset,
  shifts and split_seed), `model`, `optim`, `trainer.steps` and `trainer.batch_size`, same
  seed. The source does not count, since target_only never reads source data.
* a run that reads no target labels -> the paired `source_only` from scratch (equal `source`
  as well) for the adaptation gain, and the zero-label (chance) baseline for its NTG. A
  source_only run from scratch is its own reference.

A reference is a completed run under the searched dirs (the sweep measured, the cache) whose
config and seed match, kept in the one find-or-train cache (`jtl.results.cache`): the cache's
own dir for it first, else the one found; two found are an error naming both, never a silent
choice. A missing one is trained once into the cache, `<baselines_dir>/<method>/<hash of the
key>/seed<S>`, by a subprocess `python -m jtl.train <overrides> method=<method> seed=S
hydra.run.dir=<dir>` (a crashed one resumes there); a lock file makes parallel sweep jobs
train each only once. `jtl.report` never trains: it names what is missing.

Runs are grouped (`jtl.measure`: by their config minus seed, with `init_from` replaced by the
source run's config, which differs per seed only in its seed; `jtl.report`: by its table's
groups) and each group is paired by seed, one run per seed: one run alone gives a gap but an
infinite interval, so measure the sweep dir to get a verdict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jtl import rundir
from jtl.errors import JtlError
from jtl.measures import ntg
from jtl.measures.base import MeasureValues
from jtl.results.cache import RunCache
from jtl.rundir import atomic_write_text, read_summary
from jtl.rundir import load_config as read_config

TARGET_ONLY, SOURCE_ONLY = "target_only", "source_only"
BASELINE_METHOD = TARGET_ONLY
DEFAULT_METRIC = "target/test/accuracy"
# Launches one baseline: (overrides without hydra.run.dir, run dir) -> None.
Launcher = Callable[[list[str], Path], None]


class MissingBaselineError(JtlError):
    """A reference run is neither found nor allowed to be trained."""


def reads_target_labels(cfg: Mapping[str, Any]) -> bool:
    """Whether the run's method trains on target labels (the `uses` gate of `jtl.methods`)."""
    from jtl.methods import METHODS

    return "target/y" in METHODS.get(cfg["method"]["name"]).uses


def is_reference(cfg: Mapping[str, Any], method: str) -> bool:
    """`method` trained from scratch (no `init_from`): a reference, not a transfer run."""
    return cfg["method"]["name"] == method and not cfg.get("init_from")


def is_baseline(cfg: Mapping[str, Any]) -> bool:
    """target_only from scratch: NTG's reference, never measured as a transfer run."""
    return is_reference(cfg, TARGET_ONLY)


def reference_key(cfg: Mapping[str, Any], method: str = TARGET_ONLY) -> dict[str, Any]:
    """What a `method` reference must share with a run, seed aside (see module doc)."""
    try:
        key = {"target": cfg["target"], "model": cfg["model"], "optim": cfg["optim"],
               "trainer": {k: cfg["trainer"][k] for k in ("steps", "batch_size")}}
        if method == SOURCE_ONLY:  # the source role: one domain (as before), or several
            if cfg.get("sources"):
                key["sources"] = cfg["sources"]
            else:
                key["source"] = cfg["source"]
    except KeyError as e:
        raise JtlError(f"run config lacks {e}: not a jtl training config") from e
    return key


def baseline_key(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The target_only baseline's key (`reference_key`)."""
    return reference_key(cfg, TARGET_ONLY)


def key_hash(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def transfer_signature(cfg: Mapping[str, Any], _depth: int = 0) -> str:
    """A run's identity (`rundir.identity`: presentation keys never split a group) minus its
    seed; `init_from` stands for the init run's own signature (its checkpoint's hash under
    `inputs`, one per seed, is left out)."""
    c = {k: v for k, v in rundir.identity(cfg).items() if k != "seed"}
    recorded = {k: v for k, v in (c.pop("inputs", None) or {}).items() if k != "init_from"}
    if recorded:
        c["inputs"] = recorded
    init = c.get("init_from")
    if init and _depth < 8:
        try:
            c["init_from"] = "run:" + key_hash({"sig": transfer_signature(read_config(init),
                                                                          _depth + 1)})
        except JtlError:
            c["init_from"] = str(init)
    return json.dumps(c, sort_keys=True, default=str)


def override_value(v: Any) -> str:
    """A Python value in Hydra's override grammar (strings quoted, containers recursive)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else
                                                  ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        if "\\" in v or "${" in v:
            raise JtlError(f"cannot pass {v!r} to a baseline run as an override (backslash or "
                           "interpolation); train the baseline by hand")
        return "'" + v.replace("'", "\\'") + "'"
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{k}:{override_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(override_value(x) for x in v) + "]"
    raise JtlError(f"cannot write {v!r} ({type(v).__name__}) as a Hydra override")


# (config section, its config group) whose option is chosen by the section's `name`.
_GROUPS = (("source", "domain@source"), ("target", "domain@target"), ("model", "model"),
           ("optim", "optim"))


def baseline_overrides(cfg: Mapping[str, Any], seed: int,
                       method: str = TARGET_ONLY) -> list[str]:
    """Overrides composing a run's `method` reference from `conf/` (no hydra.run.dir).

    Every value is spelled out (`++key=value`) so that the result does not depend on the
    run's command line or experiment file; the source stays as it was (target_only still
    evaluates on it).
    """
    out = []
    for section, group in _GROUPS:
        if cfg.get(section) is None:  # several sources (below), or none
            out.append(f"{section}=null")
            continue
        out.append(f"{group}={cfg[section]['name']}")
        out += [f"++{section}.{k}={override_value(v)}" for k, v in cfg[section].items()
                if k != "name"]
    out += [f"++trainer.{k}={override_value(v)}" for k, v in cfg["trainer"].items()
            if k not in ("progress", "lanes")]  # a baseline is a run of its own: one lane
    out.append("++trainer.progress=false")
    out += [f"++paths.{k}={override_value(v)}" for k, v in (cfg.get("paths") or {}).items()]
    if cfg.get("sources"):
        out.append(f"++sources={override_value(cfg['sources'])}")
    out += [f"method={method}", f"seed={int(seed)}"]
    return out


def subprocess_launcher(overrides: list[str], run_dir: Path) -> None:
    """Train one baseline with `python -m jtl.train` in a child process (its log goes to ours)."""
    cmd = [sys.executable, "-m", "jtl.train", *overrides,
           f"hydra.run.dir={override_value(str(run_dir))}"]
    print("jtl: training baseline: " + " ".join(cmd), file=sys.stderr, flush=True)
    rc = subprocess.run(cmd, check=False).returncode
    if rc != 0:
        raise JtlError(f"baseline training failed (exit {rc}) in {run_dir}; its train.log and "
                       f"summary.json say why. Command: {' '.join(cmd)}")


@dataclasses.dataclass(frozen=True)
class NtgOptions:
    """`measure.ntg.*` (the `ntg` measure's options): confidence level, err = 1 - metric,
    the baselines cache (None: `default_baselines_dir`) and whether to train missing ones."""

    level: float = 0.95
    metric: str = DEFAULT_METRIC
    baselines_dir: str | None = None
    launch: bool = True

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> NtgOptions:
        """Options of a composed `measure.ntg` entry; unknown keys are an error."""
        options = {k: v for k, v in (cfg or {}).items() if k != "name"}
        known = [p for p in inspect.signature(ntg.ntg_measure).parameters if p != "ctx"]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise JtlError(f"measure 'ntg' has no option(s) {unknown}; it takes {known}")
        return cls(**options)

    def cache_dir(self, root: Path) -> Path:
        return Path(self.baselines_dir) if self.baselines_dir else default_baselines_dir(root)


@dataclasses.dataclass(frozen=True)
class TransferRun:
    """A completed run to be compared: its config, seed and target error (1 - metric)."""

    path: Path
    cfg: dict[str, Any]
    seed: int
    err: float
    summary: dict[str, Any]


def _error(run_dir: Path, summary: Mapping[str, Any], metric: str) -> float:
    if metric not in summary:
        raise JtlError(f"{run_dir}/{rundir.SUMMARY} has no '{metric}'; NTG reads "
                       f"err = 1 - {metric}")
    return 1.0 - float(summary[metric])


def load_transfer_run(run_dir: str | os.PathLike, metric: str = DEFAULT_METRIC
                      ) -> TransferRun | str:
    """The run, or why it is not compared (a target_only baseline, not completed)."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    if is_baseline(cfg):
        return "a target_only baseline, not a transfer run"
    summary = read_summary(run_dir)
    status = None if summary is None else summary.get("status")
    if summary is None or status != "completed":
        return f"not completed (status {status})"
    if "seed" not in cfg:
        raise JtlError(f"{run_dir}/{rundir.CONFIG} has no seed; NTG pairs runs by seed")
    return TransferRun(run_dir, cfg, int(cfg["seed"]), _error(run_dir, summary, metric),
                       summary)


def by_seed(runs: Sequence[TransferRun]) -> dict[int, TransferRun]:
    """Seed -> run; two runs of one seed are an error naming both (never averaged or
    overwritten: which one counts is the user's call)."""
    out: dict[int, TransferRun] = {}
    for r in runs:
        if r.seed in out:
            raise JtlError(f"{out[r.seed].path} and {r.path} are both seed {r.seed} of one "
                           "group; NTG pairs one run per seed, so move one of them out of the "
                           "measured dir (or, in jtl.report, split the group with --by)")
        out[r.seed] = r
    return out


def reference_of(cfg: Mapping[str, Any]) -> tuple[str, str, int] | None:
    """A saved config's key in the baselines cache, (method, key hash, seed), when it is a
    reference run (`is_reference`) with a seed; else None."""
    section = cfg.get("method")
    method = section.get("name") if isinstance(section, Mapping) else None
    if method not in (TARGET_ONLY, SOURCE_ONLY) or not is_reference(cfg, method) \
            or "seed" not in cfg:
        return None
    return method, key_hash(reference_key(cfg, method)), int(cfg["seed"])


class BaselineCache:
    """Completed reference runs (target_only, source_only from scratch) by (method, key hash,
    seed), found under some roots (`jtl.results.cache`); trains the missing ones when allowed,
    each into `<baselines_dir>/<method>/<key hash>/seed<S>` beside the key's `key.json`."""

    def __init__(self, baselines_dir: Path, search: Sequence[Path] = (),
                 launcher: Launcher | None = None, launch: bool = True) -> None:
        self.dir = Path(baselines_dir)
        self.launcher = launcher or subprocess_launcher
        self.launch = launch
        self.runs = RunCache(self.dir, reference_of, self._place, search,
                             describe=lambda k: f"the {k[0]} reference of seed {k[2]} for "
                                                "this config")

    @property
    def launched(self) -> list[Path]:
        """The baselines trained by this cache, in order."""
        return self.runs.trained

    def _place(self, key: tuple[str, str, int]) -> tuple[Path, Path]:
        method, digest, seed = key
        return (self.dir / method / digest / f"seed{seed}",
                self.dir / method / digest / f".seed{seed}.lock")

    def _key(self, method: str, cfg: Mapping[str, Any], seed: int) -> tuple[str, str, int]:
        return method, key_hash(reference_key(cfg, method)), seed

    def find(self, method: str, cfg: Mapping[str, Any], seed: int) -> Path | None:
        """The one completed `method` reference of this config and seed, or None."""
        return self.runs.find(self._key(method, cfg, seed))

    def get_all(self, method: str, runs: Mapping[int, TransferRun]) -> dict[int, Path]:
        """Seed -> the `method` reference of each run, training the missing ones if allowed."""
        found = {s: self.find(method, r.cfg, s) for s, r in runs.items()}
        missing = sorted(s for s, p in found.items() if p is None)
        if missing and not self.launch:
            s = missing[0]
            raise MissingBaselineError(
                f"no {method} reference for seed(s) {missing} of {runs[s].path}'s config under "
                f"{self.dir} or the measured dir; train them with `python -m jtl.measure "
                f"run_dir=<dir> measure=[ntg]`, or by hand: `python -m jtl.train "
                f"{' '.join(baseline_overrides(runs[s].cfg, s, method))} "
                f"hydra.run.dir={self._place(self._key(method, runs[s].cfg, s))[0]}`")
        for s in missing:
            found[s] = self._train(method, runs[s].cfg, s)
        return found  # type: ignore[return-value]

    def _train(self, method: str, cfg: Mapping[str, Any], seed: int) -> Path:
        key = reference_key(cfg, method)

        def launch(run_dir: Path) -> None:
            key_file = run_dir.parent / "key.json"
            if not key_file.exists():
                atomic_write_text(key_file, json.dumps(key, indent=2, sort_keys=True) + "\n")
            self.launcher(baseline_overrides(cfg, seed, method), run_dir)

        return self.runs.get(self._key(method, cfg, seed), launch)


def default_baselines_dir(root: Path) -> Path:
    """`<sweep dir>/baselines`, or `<parent>/baselines` for a single run dir."""
    root = Path(root)
    return (root.parent if (root / rundir.CONFIG).exists() else root) / "baselines"


_NUM_CLASSES: dict[str, int] = {}


def num_classes(run: TransferRun) -> int:
    """Classes of the run's target: its summary's `num_classes`, else from its domains (once
    per target config)."""
    if "num_classes" in run.summary:
        return int(run.summary["num_classes"])
    key = json.dumps({k: run.cfg.get(k) for k in ("source", "target", "model", "paths")},
                     sort_keys=True, default=str)
    if key not in _NUM_CLASSES:
        from jtl.train.build import load_domains

        _NUM_CLASSES[key] = int(load_domains(run.cfg)[1].num_classes)
    return _NUM_CLASSES[key]


def is_source_free(cfg: Mapping[str, Any]) -> bool:
    """A run that reads no source (`source: null`, no `sources`) from a source model
    (`init_from`): AdaBN, TENT, SHOT."""
    return not cfg.get("source") and not cfg.get("sources") and bool(cfg.get("init_from"))


def source_model(run: TransferRun) -> Path:
    """A source-free run's reference: the run it starts from, scored on the same target
    split (its own source model's accuracy, not a retrained source_only)."""
    init = Path(run.cfg["init_from"])
    other = read_config(init)
    if other.get("target") != run.cfg.get("target"):
        raise JtlError(f"{run.path}: its source model {init} was evaluated on another target "
                       "config, so it is no reference for this run; train the source run with "
                       "this target (domain@target=..., the same target.* keys)")
    return init


@dataclasses.dataclass
class Comparison:
    """One group of runs (one per seed) against its references: the group's values (mean,
    interval, verdict of each comparison) and each run's own (its gaps and reference dirs)."""

    values: MeasureValues
    per_run: dict[Path, MeasureValues]


def _errors(refs: Mapping[int, Path], metric: str) -> dict[int, float]:
    return {s: _error(p, read_summary(p) or {}, metric) for s, p in refs.items()}


def _zero_label(runs: Mapping[int, TransferRun], level: float) -> tuple[MeasureValues, float]:
    classes = {num_classes(r) for r in runs.values()}
    if len(classes) != 1:
        raise JtlError(f"the runs of one group have targets of {sorted(classes)} classes")
    chance = ntg.chance_error(classes.pop())
    return ntg.zero_label_gap({s: r.err for s, r in runs.items()}, chance, level), chance


def compare(members: Sequence[TransferRun], cache: BaselineCache,
            opts: NtgOptions = NtgOptions()) -> Comparison:
    """Pair a group of runs (one per seed) with their references (module doc, `ntg`)."""
    runs = by_seed(members)
    labels = {r.path: reads_target_labels(r.cfg) for r in members}
    if len(set(labels.values())) > 1:
        yes = next(p for p, v in labels.items() if v)
        no = next(p for p, v in labels.items() if not v)
        raise JtlError(f"one group holds runs that read target labels ({yes}) and runs that "
                       f"do not ({no}); they have different baselines, so group them apart "
                       "(jtl.report: --by method.name)")
    transfer = {s: r.err for s, r in runs.items()}
    if any(labels.values()):
        base = cache.get_all(TARGET_ONLY, runs)
        base_err = _errors(base, opts.metric)
        return Comparison(
            {"ntg_baseline": ntg.SAME_LABELS,
             **ntg.negative_transfer_gap(transfer, base_err, opts.level)},
            {r.path: {"ntg_transfer_err": r.err,
                      "ntg_gap": r.err - base_err[s], "ntg_baseline_err": base_err[s],
                      "ntg_baseline_dir": str(base[s])} for s, r in runs.items()})
    own = {s: r.path for s, r in runs.items() if is_reference(r.cfg, SOURCE_ONLY)}
    own.update({s: source_model(r) for s, r in runs.items() if is_source_free(r.cfg)})
    refs = {**cache.get_all(SOURCE_ONLY, {s: r for s, r in runs.items() if s not in own}),
            **own}
    ref_err = _errors(refs, opts.metric)
    values: MeasureValues = {"ntg_baseline": ntg.NO_LABELS}
    if all(is_reference(r.cfg, SOURCE_ONLY) for r in runs.values()):
        values[f"{ntg.GAIN}_verdict"] = ntg.REFERENCE
    else:
        values.update(ntg.adaptation_gain(transfer, ref_err, opts.level))
    try:
        zero, chance = _zero_label(runs, opts.level)
    except JtlError as e:  # the gain stands on its own; say why the NTG is missing
        zero, chance = {f"{ntg.ZERO_LABEL}_verdict": f"unavailable: {e}"}, None
    values.update(zero if chance is None else {**zero, "ntg_zero_label_err": chance})
    per_run: dict[Path, MeasureValues] = {}
    for s, r in runs.items():
        per_run[r.path] = {"ntg_transfer_err": r.err,
                           "ntg_adaptation_gain": ref_err[s] - r.err,
                           "ntg_source_only_err": ref_err[s], "ntg_source_only_dir": str(refs[s])}
        if chance is not None:
            per_run[r.path]["ntg_zero_label_gap"] = r.err - chance
    return Comparison(values, per_run)


@dataclasses.dataclass
class NtgResult:
    """Per run dir: the values written to its measures.json; plus what was launched/skipped."""

    values: dict[Path, MeasureValues]
    launched: list[Path]
    skipped: dict[Path, str]


def negative_transfer(
    run_dirs: Sequence[str | os.PathLike],
    opts: NtgOptions,
    baselines_dir: str | os.PathLike,
    launcher: Launcher | None = None,
    search: Sequence[Path] = (),
) -> NtgResult:
    """`measure=[ntg]`: every comparable run of `run_dirs`, grouped by its config minus seed.

    Baselines and unfinished runs are skipped and named in `skipped`; each run gets its
    group's values and its own, and every other NTG key as null (`ntg.ALL_KEYS`), so that
    measuring again never leaves a stale value of the other kind in measures.json.
    """
    runs: list[TransferRun] = []
    skipped: dict[Path, str] = {}
    for d in map(Path, run_dirs):
        got = load_transfer_run(d, opts.metric)
        if isinstance(got, str):
            skipped[d] = got
        else:
            runs.append(got)
    if not runs:
        why = "; ".join(f"{p}: {w}" for p, w in skipped.items()) or "no run dirs"
        raise JtlError(f"NTG needs completed transfer runs (not target_only from scratch): {why}")
    cache = BaselineCache(Path(baselines_dir), search, launcher, opts.launch)
    groups: dict[str, list[TransferRun]] = defaultdict(list)
    for r in runs:
        groups[transfer_signature(r.cfg)].append(r)
    values: dict[Path, MeasureValues] = {}
    for members in groups.values():
        c = compare(members, cache, opts)
        for path, own in c.per_run.items():
            values[path] = {**dict.fromkeys(ntg.ALL_KEYS), **c.values, **own}
    return NtgResult(values, cache.launched, skipped)
