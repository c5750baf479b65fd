"""Open a run dir: its config, domains and the parameters of a checkpoint step.

What notebooks, `jtl.measure` and later tools use instead of re-deriving a run by hand.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jtl.domains import Domain
from jtl.errors import JtlError
from jtl.methods import Method
from jtl.models import Network
from jtl.rundir import CHECKPOINTS, load_config
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


def load_run(run_dir: str | Path, step: int | None = None) -> Run:
    """Rebuild a run's network and fill it with its latest (or `step`'s) checkpoint."""
    from jtl.train.trainer import build

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    source, target, method, net = build(cfg)
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    with ckpt.manager(run_dir / CHECKPOINTS) as mngr:
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise JtlError(f"{run_dir} has no checkpoint yet")
        if step not in mngr.all_steps():
            raise JtlError(f"{run_dir} has no checkpoint at step {step}; it has "
                           f"{sorted(mngr.all_steps())}")
        abstract = jax.tree_util.tree_map(ckpt.ocp.utils.to_shape_dtype_struct, params)
        try:
            restored = mngr.restore(step, args=ckpt.ocp.args.PyTreeRestore(
                item={"params": abstract},
                restore_args=jax.tree_util.tree_map(lambda _: ckpt.ocp.RestoreArgs(),
                                                    {"params": abstract}),
                partial_restore=True))
        except Exception as e:
            raise JtlError(f"{run_dir}: the checkpoint at step {step} is unreadable "
                           f"({type(e).__name__}); resume the run to fall back to an older one, "
                           "or retrain it") from e
    model = nnx.merge(graphdef, restored["params"])
    return Run(run_dir, cfg, source, target, method, model, int(step))


def layer_names(model: Network) -> list[str]:
    n = len(model.backbone.blocks)
    return [*(f"backbone/blocks/{i}" for i in range(n)), "features", "logits", "probs"]


def features(model: Network, x: np.ndarray, layer: str = "features",
             batch_size: int = 1000) -> np.ndarray:
    """Outputs of a named layer (`layer_names`) for inputs x, flattened to (N, D)."""
    names = layer_names(model)
    if layer not in names:
        raise JtlError(f"unknown layer '{layer}'; this model has {names}")

    @jax.jit
    def fwd(x):
        h = x
        for i, block in enumerate(model.backbone.blocks):
            h = block(h)
            if layer == f"backbone/blocks/{i}":
                return h.reshape(h.shape[0], -1)
        if layer == "features":
            return h
        logits = model.head(h)
        return logits if layer == "logits" else jax.nn.softmax(logits)

    out = [np.asarray(fwd(jnp.asarray(x[i:i + batch_size])))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out)
