"""Several hosts (processes) training one run: `jax.distributed` from the environment.

Each process runs the same program on its own devices; the trainer's mesh then spans every
process's devices (`jax.devices()`), the batch is split over all of them, and XLA's
collectives (NCCL on GPUs, gloo on CPUs) reduce the gradients. Process 0 owns the run dir
(lock, config, metrics, summary); every process takes part in checkpoint saves (orbax).

Started from, in order: `JTL_COORDINATOR` (host:port) with `JTL_NUM_PROCESSES` and
`JTL_PROCESS_ID` (any launcher, or by hand); or a SLURM step with more than one task
(`srun`, `SLURM_NTASKS` > 1), which `jax.distributed.initialize()` reads itself.
"""

from __future__ import annotations

import logging
import os

import jax

log = logging.getLogger("jtl")


def initialize() -> bool:
    """Join the distributed run the environment describes (idempotent). True when this is one
    process of several."""
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    coordinator = os.environ.get("JTL_COORDINATOR")
    slurm = int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ
    if not coordinator and not slurm:
        return False
    if os.environ.get("JAX_PLATFORMS", "").startswith("cpu") or not _has_accelerator():
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator:
        jax.distributed.initialize(coordinator, int(os.environ["JTL_NUM_PROCESSES"]),
                                   int(os.environ["JTL_PROCESS_ID"]))
    else:
        jax.distributed.initialize()
    log.info("process %d of %d, %d local / %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())
    return jax.process_count() > 1


def _has_accelerator() -> bool:
    """Without starting a backend (which must come after `initialize`)."""
    import importlib.util

    return any(importlib.util.find_spec(m) is not None
               for m in ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu"))


def is_primary() -> bool:
    """The process that writes the run dir."""
    return jax.process_index() == 0
