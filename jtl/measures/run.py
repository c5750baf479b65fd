"""Measure trained runs: features from a checkpoint -> `MeasureContext` -> measures.json.

`measure_run(run_dir, measure_cfg)` is what `jtl.measure` and the end-of-training hook call
for one run; `measure_dirs` does the same for every run of a sweep, so that NTG can pair the
sweep's seeds (`jtl.results.baselines`).

The measured model plays the *source model* of the transferability estimates (LEEP, NCE read
its softmax on target inputs, LogME, H-score its layer features there). They score how well
that model suits the target *task*, whose labels are the target **train** split's (with
`per_class`, the labeled subset the runs train on): they always read that split, whatever
`split` says, and never the target test labels, which are for evaluation only. On a run that
already trained on the target they only describe that run. The feature measures (pad, mmd,
coral, tsne) read `split` of both domains (default test).

Feature measures on a layer other than `features` write their keys prefixed by the layer
(`backbone/blocks/0/pad`), so measuring several layers never overwrites one another.
JAX and the model code are imported inside the functions: the measure registry imports every
module of this package and must stay light.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtl import rundir
from jtl.errors import JtlError
from jtl.measures.base import MEASURES, MeasureContext, MeasureValues, run_measures, subsample
from jtl.results.baselines import (
    Launcher,
    NtgOptions,
    default_baselines_dir,
    negative_transfer,
)
from jtl.rundir import find_runs, is_completed, write_measures

DEFAULT_LAYER = "features"
SPLITS = ("train", "val", "test")
# Transferability estimates: they read target labels, so they read the target train split.
TASK_MEASURES = frozenset({"leep", "logme", "hscore", "nce"})
TASK_SPLIT = "train"


@dataclasses.dataclass(frozen=True)
class FeatureOptions:
    """How features are taken: the layer, the split of both domains, and a per-domain cap."""

    layer: str = DEFAULT_LAYER
    split: str = "test"  # of the feature measures; TASK_MEASURES read TASK_SPLIT
    max_samples: int | None = 2000
    step: int | None = None  # checkpoint step; None: the latest
    seed: int | None = None  # subsampling seed; None: the run's seed


def _plain(cfg: Any) -> dict[str, dict[str, Any]]:
    """A composed `measure` config (DictConfig or dict) -> {key: {name: ..., **options}}."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, Mapping):
        raise JtlError(f"a measure config maps names to options, e.g. {{pad: {{}}}}; got {cfg!r}")
    return {str(k): dict(v or {}) for k, v in cfg.items()}


def _name(key: str, entry: Mapping[str, Any]) -> str:
    return str(entry.get("name", key))


def split_ntg(cfg: Any) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """(feature measures, ntg options or None); unknown names and NTG options fail before
    any model loads."""
    plain = _plain(cfg)
    for key, entry in plain.items():
        MEASURES.get(_name(key, entry))
    ntg = [entry for key, entry in plain.items() if _name(key, entry) == "ntg"]
    rest = {k: e for k, e in plain.items() if _name(k, e) != "ntg"}
    if ntg:
        NtgOptions.from_cfg(ntg[0])
    return rest, (ntg[0] if ntg else None)


def extract_context(run: Any, opts: FeatureOptions = FeatureOptions()) -> MeasureContext:
    """Source and target features of one layer (and target softmax) of `opts.split` of both
    domains, from a loaded `Run`."""
    from jtl.train.runs import features, layer_names

    names = layer_names(run.model)
    if opts.layer not in names:
        raise JtlError(f"unknown layer '{opts.layer}' for {run.run_dir}; this model has "
                       f"{names}")
    if opts.split not in SPLITS:
        raise JtlError(f"split must be one of {SPLITS}, got '{opts.split}'")
    seed = int(run.cfg["seed"]) if opts.seed is None else int(opts.seed)
    rng = np.random.default_rng(seed)
    src, tgt = getattr(run.source, opts.split), getattr(run.target, opts.split)
    if len(src) == 0 or len(tgt) == 0:
        raise JtlError(f"the {opts.split} split of {'source' if len(src) == 0 else 'target'} "
                       f"is empty in {run.run_dir}; measure split=test")
    i_s = subsample(rng, len(src), opts.max_samples)
    i_t = subsample(rng, len(tgt), opts.max_samples)
    x_t = tgt.x[i_t]
    return MeasureContext(
        source_features=features(run.model, src.x[i_s], opts.layer),
        source_labels=src.y[i_s],
        target_features=features(run.model, x_t, opts.layer),
        target_labels=tgt.y[i_t],
        target_source_probs=features(run.model, x_t, "probs"),
        run_dir=Path(run.run_dir),
        seed=seed,
    )


def measure_loaded(run: Any, cfg: Mapping[str, Mapping[str, Any]],
                   opts: FeatureOptions = FeatureOptions()) -> MeasureValues:
    """Run the (non-NTG) measures of `cfg` on a loaded `Run`: TASK_MEASURES on the target
    train split, the others on `opts.split` (one extraction when they coincide)."""
    task = {k: e for k, e in cfg.items() if _name(k, e) in TASK_MEASURES}
    rest = {k: e for k, e in cfg.items() if k not in task}
    contexts: dict[str, MeasureContext] = {}

    def context(split: str) -> MeasureContext:
        if split not in contexts:
            contexts[split] = extract_context(run, dataclasses.replace(opts, split=split))
        return contexts[split]

    values: MeasureValues = {}
    for split, part in ((opts.split, rest), (TASK_SPLIT, task)):
        if part:
            values.update(run_measures(context(split), part))
    if opts.layer != DEFAULT_LAYER:
        values = {f"{opts.layer}/{k}": v for k, v in values.items()}
    return values


def _feature_measures(run_dir: Path, cfg: Mapping[str, Mapping[str, Any]],
                      opts: FeatureOptions) -> tuple[MeasureValues, int]:
    """Values and the checkpoint step they were taken at: the run's completed step, or the
    step asked for (an unfinished run is refused otherwise: its values would sit beside
    final accuracies they do not describe)."""
    from jtl.train.runs import load_run

    rundir.load_config(run_dir, complete=True)  # a damaged config: one line, before any load
    step = rundir.require_completed(run_dir, opts.step, "measure")
    with warnings.catch_warnings():  # orbax warns on every restore without a sharding spec
        warnings.filterwarnings("ignore", message="Sharding info not provided")
        run = load_run(run_dir, step)
    return measure_loaded(run, cfg, opts), run.step


def _check_dir(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir)
    why = rundir.dir_problem(path)
    if why is not None or not path.is_dir():
        raise JtlError(f"run_dir {path}: {why or 'does not exist'}; pass a run dir (holding "
                       "summary.json) or a sweep dir of them")
    return path


def measure_run(run_dir: str | os.PathLike, measure_cfg: Any,
                opts: FeatureOptions = FeatureOptions(),
                launcher: Launcher | None = None) -> MeasureValues:
    """Run the measures of a composed `measure` config on one run; merge into measures.json.

    What the end-of-training hook calls. With `ntg` among them, the run's references are
    found or trained (see `jtl.results.baselines`); one run alone gives its gap, not a
    verdict.
    """
    run_dir = _check_dir(run_dir)
    if not (run_dir / rundir.CONFIG).exists():
        raise JtlError(f"{run_dir} is not a jtl run dir: {rundir.CONFIG} is missing")
    return measure_dirs([run_dir], measure_cfg, opts, launcher=launcher,
                        root=run_dir)[run_dir]


def measure_dirs(run_dirs: Sequence[Path], measure_cfg: Any,
                 opts: FeatureOptions = FeatureOptions(), launcher: Launcher | None = None,
                 root: Path | None = None) -> dict[Path, MeasureValues]:
    """Measure each run dir (feature measures per run, NTG over all of them, grouped)."""
    rest, ntg = split_ntg(measure_cfg)
    if not rest and ntg is None:
        raise JtlError("nothing to measure: pass measure=[...] with any of "
                       f"{', '.join(MEASURES.names())}")
    out: dict[Path, MeasureValues] = {Path(d): {} for d in run_dirs}
    if rest:
        for d in out:
            values, step = _feature_measures(d, rest, opts)
            out[d].update(values)
            write_measures(d, values, step)
    if ntg is not None:
        root = Path(root) if root is not None else next(iter(out))
        o = NtgOptions.from_cfg(ntg)
        result = negative_transfer(list(out), o, o.cache_dir(root), launcher, search=[root])
        for d, why in result.skipped.items():
            print(f"jtl: ntg: skipping {d}: {why}", file=sys.stderr)
        for d, values in result.values.items():
            out[d].update(values)
            write_measures(d, values, rundir.completed_step(d))
    return out


def runs_under(root: str | os.PathLike, baselines_dir: Path | None = None) -> list[Path]:
    """A run dir itself, or the completed run dirs of a sweep (not its baselines cache)."""
    root = _check_dir(root)
    if (root / rundir.CONFIG).exists():
        return [root]
    runs = [r for r in find_runs(root, exclude=[baselines_dir or default_baselines_dir(root)])
            if is_completed(r)]
    if not runs:
        raise JtlError(f"no completed run under {root} (looked for */{rundir.CONFIG} beside a "
                       "summary.json with status completed)")
    return runs


def measure_path(root: str | os.PathLike, measure_cfg: Any,
                 opts: FeatureOptions = FeatureOptions(),
                 launcher: Launcher | None = None) -> dict[Path, MeasureValues]:
    """`jtl.measure run_dir=ROOT`: a run dir, or every completed run of a sweep (not the
    baselines cache NTG trains into it)."""
    _, ntg = split_ntg(measure_cfg)  # unknown names fail here, before any model loads
    root = _check_dir(root)
    cache = NtgOptions.from_cfg(ntg).cache_dir(root) if ntg is not None else None
    return measure_dirs(runs_under(root, cache), measure_cfg, opts, launcher=launcher,
                        root=root)


def end_of_training(measure_cfg: Any) -> Any:
    """The `+measure=[...]` hook handed to the trainer: checks the names now (before training)
    and measures the completed run. A failing measure is logged; the run stays completed."""
    import logging

    split_ntg(measure_cfg)

    def hook(run_dir: Path, summary: Mapping[str, Any]) -> None:
        try:
            measure_run(run_dir, measure_cfg)
        except JtlError as e:
            logging.getLogger("jtl").error("measures failed (the run itself completed): %s", e)

    return hook


def train_and_measure(cfg: Any, workdir: str | os.PathLike) -> dict[str, Any]:
    """`train_and_evaluate` plus the config's `measure` group at the end, from Python."""
    from jtl.train import train_and_evaluate

    measure = cfg.get("measure") if hasattr(cfg, "get") else None
    return train_and_evaluate(cfg, workdir,
                              on_complete=end_of_training(measure) if measure else None)
