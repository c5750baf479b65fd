"""Data parallelism over the local devices, with no change to method code.

One mesh axis, `data`. The training state and the on-device data are replicated; each step's
drawn batch is constrained to be split over `data` on its batch axis, and XLA's SPMD
partitioner does the rest (per-device forward/backward, an all-reduce of the gradients). A
method still sees the whole global batch, so batch statistics (CORAL's covariances, MCC's
class confusion) are those of the global batch, as on one device; only the order of float
reductions changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jtl.errors import JtlError

AXIS = "data"


def make_mesh(spec: Any) -> Mesh | None:
    """`trainer.mesh`: `auto` (every device: this process's, or every process's in a
    distributed run), n (the first n), or null / 1 (no mesh). None when one device would hold
    it all: the single-device path stays untouched."""
    devices = jax.devices() if jax.process_count() > 1 else jax.local_devices()
    if spec in (None, "auto"):
        n = len(devices)
    elif isinstance(spec, int) and not isinstance(spec, bool) and 1 <= spec <= len(devices):
        n = spec
    else:
        raise JtlError(f"trainer.mesh={spec!r}: use auto, null, or a device count in "
                       f"[1, {len(devices)}] (this run sees {len(devices)} devices)")
    return Mesh(devices[:n], (AXIS,)) if n > 1 else None


def check_batch(mesh: Mesh | None, batch_size: int) -> None:
    if mesh is not None and batch_size % mesh.size:
        raise JtlError(f"trainer.batch_size={batch_size} does not split over the "
                       f"{mesh.size} devices of trainer.mesh; use a multiple of {mesh.size} "
                       "or trainer.mesh=<fewer devices>")


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    if mesh is None:
        return jax.device_put(tree)
    if jax.process_count() > 1:  # every process holds the same host values: place them
        tree = jax.tree_util.tree_map(np.asarray, tree)
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def split_streamed(batches: Any, mesh: Mesh | None) -> Any:
    """Host batches stacked per step (steps, B, ...): split B over the devices."""
    if mesh is None:
        return batches
    return jax.device_put(batches, NamedSharding(mesh, PartitionSpec(None, AXIS)))


def batch_constraint(mesh: Mesh | None) -> Callable[[Any], Any] | None:
    """Inside the compiled step: the drawn batch split over `data` on its first axis."""
    if mesh is None:
        return None
    sharding = NamedSharding(mesh, PartitionSpec(AXIS))
    return lambda batch: jax.lax.with_sharding_constraint(batch, sharding)
