"""Orbax checkpoints: resume a run in its own dir, or start from another run's parameters."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jtl import rundir
from jtl.errors import JtlError
from jtl.models.base import path_str

log = logging.getLogger("jtl")


def manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        directory.resolve(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
    )


def _finite(tree: Any) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.inexact))


def restore_latest(mngr: ocp.CheckpointManager, state: Any) -> Any | None:
    """The newest *valid* saved state, shaped like `state`; None for a fresh run dir.

    A checkpoint that cannot be read (truncated by a crash mid-write, a bad disk) or holds
    non-finite values is reported in one line and moved to `checkpoints.corrupt/`, and the
    next older one is tried, so one bad file costs at most a checkpoint interval.
    """
    ckpt_dir = Path(mngr.directory)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            restored = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
            why = None if _finite(restored) else "it holds non-finite values"
        except Exception as e:  # orbax raises many types for a damaged checkpoint
            restored, why = None, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        if why is None:
            return restored
        if jax.process_index() != 0:  # in a distributed run, process 0 moves it aside
            log.warning("checkpoint at step %d is unreadable (%s)", step, why)
            continue
        aside = ckpt_dir.parent / "checkpoints.corrupt" / f"{step}.{int(time.time())}"
        aside.parent.mkdir(exist_ok=True)
        os.replace(ckpt_dir / str(step), aside)
        mngr.reload()
        log.warning("checkpoint at step %d is unreadable (%s); moved it to %s and resuming from "
                    "the previous one", step, why, aside)
    return None


def _flat(tree: Any) -> dict[str, Any]:
    return {path_str(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def load_params(run_dir: str | Path, params: Any, load: str = ".*",
                dont_load: str | None = None, step: int | None = None) -> tuple[Any, list[str]]:
    """Replace the parameters of `params` whose path matches `load` and not `dont_load` by
    those of `run_dir`'s checkpoint at `step` (its completed step unless asked; an unfinished
    run is refused), as big_vision's `init`/`dont_load`."""
    ckpt_dir = Path(run_dir) / rundir.CHECKPOINTS
    if not ckpt_dir.is_dir():
        raise JtlError(f"init_from={run_dir}: no checkpoints/ folder there. Point init_from at "
                       "a jtl run dir (the one holding summary.json).")
    step = rundir.require_completed(run_dir, step, "init_from")
    with manager(ckpt_dir) as mngr:
        if step not in mngr.all_steps():
            raise JtlError(f"init_from={run_dir}: no checkpoint at step {step}; it has "
                           f"{sorted(mngr.all_steps())} (set init_from_step=...)")
        try:
            saved = _flat(mngr.restore(step)["params"])
        except Exception as e:
            raise JtlError(f"init_from={run_dir}: the checkpoint at step {step} is unreadable "
                           f"({type(e).__name__}); retrain that run") from e
    loaded = []

    def pick(path, value):
        p = path_str(path)
        if not re.fullmatch(load, p) or (dont_load and re.fullmatch(dont_load, p)):
            return value
        if p not in saved:
            raise JtlError(f"init_from={run_dir} has no parameter '{p}'; exclude it with "
                           f"dont_load='{p.split('/')[0]}/.*' or choose a run of the same model")
        if saved[p].shape != value.shape:
            raise JtlError(
                f"init_from: '{p}' has shape {saved[p].shape} there and {value.shape} here "
                f"(a different class count?). Replace the head with dont_load='head/.*'.")
        loaded.append(p)
        return np.asarray(saved[p], dtype=value.dtype)

    new = jax.tree_util.tree_map_with_path(pick, params)
    if not loaded:
        raise JtlError(f"init_from={run_dir}: load='{load}' dont_load='{dont_load}' matched no "
                       "parameter")
    return new, loaded
