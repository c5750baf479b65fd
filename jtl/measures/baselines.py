"""NTG end to end: find (or train) each transfer run's target_only baseline, then the gap.

A transfer run's baseline is a `method=target_only` run trained from scratch (no `init_from`)
on the same target: equal `target`, `model` and `optim` configs, equal `trainer.steps` and
`trainer.batch_size`, same seed (`baseline_key`). The source config does not count, since
target_only never reads source data, so every source measured against one target shares its
baselines. Baselines live in a cache dir as `<baselines_dir>/<hash of the key>/seed<S>`; an
existing completed run anywhere under the cache (or under the dir being measured) with an equal
key and seed is reused, a missing one is trained once by a subprocess
`python -m jtl.train <overrides> method=target_only seed=S hydra.run.dir=<dir>` (a crashed one
resumes there). A lock file makes parallel sweep jobs train each baseline only once.

Transfer runs are grouped by their config minus seed (with `init_from` replaced by the source
run's config, which differs per seed only in its seed), and each group's NTG is paired by seed:
one run alone gives a gap but an infinite interval, so measure the sweep dir to get a verdict.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from jtl.measures.base import MeasureContext, MeasureValues, run_measures
from jtl.rundir import atomic_write_text, find_runs, is_completed, read_summary
from jtl.rundir import load_config as read_config

BASELINE_METHOD = "target_only"
# Top-level config keys that never distinguish two runs' results.
NOT_RESULT_KEYS = ("seed", "hydra", "paths", "measure")
# Launches one baseline: (overrides without hydra.run.dir, run dir) -> None.
Launcher = Callable[[list[str], Path], None]


def is_baseline(cfg: Mapping[str, Any]) -> bool:
    """target_only from scratch: the reference NTG compares against, not a transfer run."""
    return cfg["method"]["name"] == BASELINE_METHOD and not cfg.get("init_from")


def baseline_key(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What a baseline must share with a transfer run, seed aside (see module doc)."""
    try:
        return {"target": cfg["target"], "model": cfg["model"], "optim": cfg["optim"],
                "trainer": {k: cfg["trainer"][k] for k in ("steps", "batch_size")}}
    except KeyError as e:
        raise JtlError(f"run config lacks {e}: not a jtl training config") from e


def key_hash(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def transfer_signature(cfg: Mapping[str, Any], _depth: int = 0) -> str:
    """Config of a run minus its seed; `init_from` stands for the init run's own signature."""
    c = {k: v for k, v in cfg.items() if k not in NOT_RESULT_KEYS}
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


def baseline_overrides(cfg: Mapping[str, Any], seed: int) -> list[str]:
    """Overrides composing the baseline of a transfer run from `conf/` (no hydra.run.dir).

    Every value is spelled out (`++key=value`) so that the result does not depend on the
    transfer run's command line or experiment file; the source stays as it was, for the
    baseline's source-side evaluations.
    """
    out = []
    for section, group in _GROUPS:
        out.append(f"{group}={cfg[section]['name']}")
        out += [f"++{section}.{k}={override_value(v)}" for k, v in cfg[section].items()
                if k != "name"]
    out += [f"++trainer.{k}={override_value(v)}" for k, v in cfg["trainer"].items()
            if k != "progress"]
    out.append("++trainer.progress=false")
    out += [f"++paths.{k}={override_value(v)}" for k, v in (cfg.get("paths") or {}).items()]
    out += [f"method={BASELINE_METHOD}", f"seed={int(seed)}"]
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


@dataclasses.dataclass
class TransferRun:
    path: Path
    cfg: dict[str, Any]
    seed: int
    err: float


@dataclasses.dataclass
class NtgResult:
    """Per transfer run dir: the values written to its measures.json; plus what was launched."""

    values: dict[Path, MeasureValues]
    launched: list[Path]
    skipped: dict[Path, str]


def _error(run_dir: Path, summary: Mapping[str, Any], metric: str) -> float:
    if metric not in summary:
        raise JtlError(f"{run_dir}/summary.json has no '{metric}'; NTG reads err = 1 - {metric}")
    return 1.0 - float(summary[metric])


class BaselineCache:
    """Completed target_only runs by (key hash, seed), found under some roots; trains the rest."""

    def __init__(self, baselines_dir: Path, search: Sequence[Path] = (),
                 launcher: Launcher | None = None, launch: bool = True) -> None:
        self.dir = Path(baselines_dir)
        self.launcher = launcher or subprocess_launcher
        self.launch = launch
        self.launched: list[Path] = []
        self.index: dict[tuple[str, int], Path] = {}
        for root in [self.dir, *search]:
            if not Path(root).is_dir():
                continue
            for run in find_runs(root):
                self._add(run)

    def _add(self, run: Path) -> None:
        try:
            cfg = read_config(run)
        except JtlError:
            return
        if is_baseline(cfg) and is_completed(run) and "seed" in cfg:
            self.index.setdefault((key_hash(baseline_key(cfg)), int(cfg["seed"])), run)

    def get(self, cfg: Mapping[str, Any], seed: int) -> Path:
        """The baseline run dir for a transfer run's config and seed, trained if missing."""
        key = baseline_key(cfg)
        h = key_hash(key)
        if (h, seed) in self.index:
            return self.index[(h, seed)]
        run_dir = self.dir / h / f"seed{seed}"
        overrides = baseline_overrides(cfg, seed)
        if not self.launch:
            raise JtlError(
                f"no target_only baseline for seed {seed} of this target config under "
                f"{self.dir}; train it with `python -m jtl.train {' '.join(overrides)} "
                f"hydra.run.dir={run_dir}` or allow launching (measure.ntg.launch=true)")
        key_file = self.dir / h / "key.json"
        if not key_file.exists():
            atomic_write_text(key_file, json.dumps(key, indent=2, sort_keys=True) + "\n")
        with rundir.file_lock(self.dir / h / f".seed{seed}.lock"):
            if not is_completed(run_dir):  # another process may have trained it meanwhile
                self.launcher(overrides, run_dir)
                self.launched.append(run_dir)
        if not is_completed(run_dir):
            raise JtlError(f"baseline {run_dir} did not complete; see its summary.json")
        got = read_config(run_dir)
        if baseline_key(got) != key or int(got["seed"]) != seed or not is_baseline(got):
            raise JtlError(f"baseline {run_dir} was trained with a config other than the one "
                           "asked for; delete that dir and measure again")
        self.index[(h, seed)] = run_dir
        return run_dir


def default_baselines_dir(root: Path) -> Path:
    """`<sweep dir>/baselines`, or `<parent>/baselines` for a single run dir."""
    root = Path(root)
    return (root.parent if (root / rundir.CONFIG).exists() else root) / "baselines"


def negative_transfer(
    run_dirs: Sequence[str | os.PathLike],
    baselines_dir: str | os.PathLike,
    ntg_cfg: Mapping[str, Any] | None = None,
    metric: str = "target/test/accuracy",
    launch: bool = True,
    launcher: Launcher | None = None,
    search: Sequence[Path] = (),
) -> NtgResult:
    """NTG of each transfer run in `run_dirs` against its (cached or newly trained) baselines.

    Baselines and unfinished runs among `run_dirs` are skipped and named in `skipped`; each
    transfer run gets the NTG of its group (`ntg_mean`, `ntg_ci_low`, ..., via the `ntg`
    measure) and its own seed's `ntg_gap`, `ntg_transfer_err`, `ntg_baseline_err` and
    `ntg_baseline_dir`.
    """
    runs: list[TransferRun] = []
    skipped: dict[Path, str] = {}
    for d in map(Path, run_dirs):
        cfg = read_config(d)
        if is_baseline(cfg):
            skipped[d] = "a target_only baseline, not a transfer run"
            continue
        summary = read_summary(d)
        status = None if summary is None else summary.get("status")
        if summary is None or status != "completed":
            skipped[d] = f"not completed (status {status})"
            continue
        runs.append(TransferRun(d, cfg, int(cfg["seed"]), _error(d, summary, metric)))
    if not runs:
        why = "; ".join(f"{p}: {w}" for p, w in skipped.items()) or "no run dirs"
        raise JtlError(f"NTG needs completed transfer runs (not target_only from scratch): {why}")

    cache = BaselineCache(Path(baselines_dir), search, launcher, launch)
    groups: dict[str, list[TransferRun]] = defaultdict(list)
    for r in runs:
        groups[transfer_signature(r.cfg)].append(r)
    values: dict[Path, MeasureValues] = {}
    cfg = {"ntg": dict(ntg_cfg or {"name": "ntg"})}
    for members in groups.values():
        by_seed: dict[int, TransferRun] = {}
        for r in members:
            if r.seed in by_seed:
                raise JtlError(f"{by_seed[r.seed].path} and {r.path} have the same config and "
                               f"seed {r.seed}; NTG pairs one run per seed, so measure one of them")
            by_seed[r.seed] = r
        base = {s: cache.get(r.cfg, s) for s, r in sorted(by_seed.items())}
        base_err = {s: _error(p, read_summary(p) or {}, metric) for s, p in base.items()}
        ctx = MeasureContext(transfer_err={s: r.err for s, r in by_seed.items()},
                             baseline_err=base_err)
        group_values = run_measures(ctx, cfg)
        for s, r in by_seed.items():
            values[r.path] = {**group_values, "ntg_gap": r.err - base_err[s],
                              "ntg_transfer_err": r.err, "ntg_baseline_err": base_err[s],
                              "ntg_baseline_dir": str(base[s])}
    return NtgResult(values, cache.launched, skipped)
