"""Open a run dir: its config, domains and the parameters of a checkpoint step.

What notebooks, `jtl.measure` and later tools use instead of re-deriving a run by hand.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jtl.domains import Domain
from jtl.errors import JtlError
from jtl.methods import Method
from jtl.models import Network
from jtl.rundir import CHECKPOINTS, load_config, status
from jtl.train import checkpoint as ckpt


@dataclasses.dataclass
class Run:
    run_dir: Path
    cfg: dict
    source: Domain
    target: Domain
    method: Method
    model: Network  # with the checkpoint's parameters
    step: int


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """The checkpoint steps saved in a run dir, oldest first ([] when there are none).

    A run dir without a checkpoints/ folder is not given one (an orbax manager would create
    it)."""
    ckpt_dir = Path(run_dir) / CHECKPOINTS
    if not ckpt_dir.is_dir():
        return []
    with ckpt.manager(ckpt_dir) as mngr:
        return sorted(int(s) for s in mngr.all_steps())


def restore_params(run_dir: str | Path, step: int, like: Any) -> Any:
    """The parameters (a pure dict shaped like `like`) of `run_dir`'s checkpoint at `step`:
    the one restore path of `load_run` and of every reader of a run's weights."""
    run_dir = Path(run_dir)
    steps = checkpoint_steps(run_dir)
    if step not in steps:
        raise JtlError(f"{run_dir} has no checkpoint at step {step}; it has {steps}")
    abstract = {"params": jax.tree_util.tree_map(ckpt.ocp.utils.to_shape_dtype_struct, like)}
    with warnings.catch_warnings(), ckpt.manager(run_dir / CHECKPOINTS) as mngr:
        warnings.filterwarnings("ignore", message="Sharding info not provided")
        try:
            restored = mngr.restore(step, args=ckpt.ocp.args.PyTreeRestore(
                item=abstract,
                restore_args=jax.tree_util.tree_map(lambda _: ckpt.ocp.RestoreArgs(), abstract),
                partial_restore=True))
        except Exception as e:
            raise JtlError(f"{run_dir}: the checkpoint at step {step} is unreadable "
                           f"({type(e).__name__}); resume the run to fall back to an older one, "
                           "or retrain it") from e
    return restored["params"]


def load_run(run_dir: str | Path, step: int | None = None) -> Run:
    """Rebuild a run's network and fill it with its latest (or `step`'s) checkpoint.

    A missing dir, a dir without config or without checkpoints fails with a JtlError before
    any data set is loaded."""
    from jtl.train.build import build

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise JtlError(f"run dir {run_dir} does not exist; pass a jtl run dir (the one "
                       "holding .hydra/config.yaml and checkpoints/)")
    cfg = load_config(run_dir)
    steps = checkpoint_steps(run_dir)
    if not steps:
        raise JtlError(f"{run_dir} holds no checkpoint yet (status {status(run_dir)}); train "
                       "it (run its command again) before loading it")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise JtlError(f"{run_dir} has no checkpoint at step {step}; it has {steps}")
    source, target, method, net = build(cfg)
    graphdef, params = nnx.split(net)
    model = nnx.merge(graphdef, restore_params(run_dir, step, params.to_pure_dict()))
    return Run(run_dir, cfg, source, target, method, model, step)


def layer_names(model: Network) -> list[str]:
    n = len(model.backbone.blocks)
    return [*(f"backbone/blocks/{i}" for i in range(n)), "features", "logits", "probs"]


@functools.partial(jax.jit, static_argnames=("graphdef", "layer"))
def _forward(graphdef: nnx.GraphDef, state: Any, x: jax.Array, layer: str) -> jax.Array:
    """One layer's output; compiled once per architecture, layer and batch shape, so every
    checkpoint and every run of a model reuse it (a closure over the model would not)."""
    model = nnx.merge(graphdef, state)
    if layer.startswith("backbone/blocks/"):
        h = x
        for i, block in enumerate(model.backbone.blocks):
            h = block(h)
            if layer == f"backbone/blocks/{i}":
                return h.reshape(h.shape[0], -1)
    h = model.features(x)  # what the head reads: the neck's output
    if layer == "features":
        return h
    logits = model.head(h)
    return logits if layer == "logits" else jax.nn.softmax(logits)


def features(model: Network, x: np.ndarray, layer: str = "features",
             batch_size: int = 1000) -> np.ndarray:
    """Outputs of a named layer (`layer_names`) for inputs x, flattened to (N, D)."""
    names = layer_names(model)
    if layer not in names:
        raise JtlError(f"unknown layer '{layer}'; this model has {names}")
    graphdef, state = nnx.split(model)
    out = [np.asarray(_forward(graphdef, state, jnp.asarray(x[i:i + batch_size]), layer))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out)
