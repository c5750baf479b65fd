"""Orbax checkpoints: resume a run in its own dir, or start from another run's parameters."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jtl.errors import JtlError
from jtl.models.base import path_str


def manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        directory.resolve(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
    )


def restore_latest(mngr: ocp.CheckpointManager, state: Any) -> Any | None:
    """The latest saved state, shaped like `state`; None for a fresh run dir."""
    step = mngr.latest_step()
    if step is None:
        return None
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))


def _flat(tree: Any) -> dict[str, Any]:
    return {path_str(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def load_params(run_dir: str | Path, params: Any, load: str = ".*",
                dont_load: str | None = None) -> tuple[Any, list[str]]:
    """Replace the parameters of `params` whose path matches `load` and not `dont_load` by
    those of `run_dir`'s latest checkpoint (big_vision's `init`/`dont_load`)."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    if not ckpt_dir.is_dir():
        raise JtlError(f"init_from={run_dir}: no checkpoints/ folder there. Point init_from at "
                       "a jtl run dir (the one holding summary.json).")
    with manager(ckpt_dir) as mngr:
        step = mngr.latest_step()
        if step is None:
            raise JtlError(f"init_from={run_dir}: checkpoints/ holds no finished checkpoint")
        saved = _flat(mngr.restore(step)["params"])
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
