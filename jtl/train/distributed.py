"""Several hosts (processes) training one run: `jax.distributed` from the environment.

Each process runs the same program on its own devices; the trainer's mesh then spans every
process's devices (`jax.devices()`), the batch is split over all of them, and XLA's
collectives (NCCL on GPUs, gloo on CPUs) reduce the gradients. Process 0 owns the run dir
(lock, config, metrics, summary); every process takes part in checkpoint saves (orbax).

Started from, in order: `JTL_COORDINATOR` (host:port) with `JTL_NUM_PROCESSES` and
`JTL_PROCESS_ID` (any launcher, or by hand); or a SLURM job step with more than one task
(`srun`: `SLURM_STEP_NUM_TASKS` > 1). The variables an `salloc` or `sbatch` shell inherits
(`SLURM_JOB_ID`, `SLURM_NTASKS`, ... but no step) describe the allocation, not this process:
a plain `python -m jtl.train` there is one process.

A process says at once that it waits for the others, and where; if they have not all joined
within `JTL_INIT_TIMEOUT` seconds (default 300) it names the missing ones in one line and
exits 2 (XLA would abort with a C++ stack trace).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import threading

import jax

from jtl.errors import JtlError

log = logging.getLogger("jtl")
INIT_TIMEOUT = 300.0  # seconds a process waits for the others; JTL_INIT_TIMEOUT changes it
# What an srun step sets and jax's SLURM detection reads; an salloc/sbatch shell lacks the
# step's variables.
SLURM_STEP = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID",
              "SLURM_LOCALID")


@dataclasses.dataclass(frozen=True)
class Plan:
    """The distributed run the environment describes: this process's place in it."""

    num_processes: int
    process_id: int
    coordinator: str | None  # host:port; None: jax finds it from SLURM's step
    where: str  # for messages: the address, or the SLURM step


def initialize() -> bool:
    """Join the distributed run the environment describes (idempotent). True when this is one
    process of several."""
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    plan = plan_from_env()
    if plan is None:
        return False
    timeout = init_timeout()
    if os.environ.get("JAX_PLATFORMS", "").startswith("cpu") or not _has_accelerator():
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    print(f"jtl: process {plan.process_id} of {plan.num_processes}: waiting for all "
          f"{plan.num_processes} processes at {plan.where} (up to {timeout:g} s; "
          "JTL_INIT_TIMEOUT=<seconds> changes it)", flush=True)
    watchdog = threading.Timer(timeout, _give_up, args=(plan, timeout))
    watchdog.daemon = True
    watchdog.start()
    try:  # jax's own deadline comes later: XLA aborts the process when it passes
        jax.distributed.initialize(
            plan.coordinator, plan.num_processes, plan.process_id,
            initialization_timeout=int(timeout) + 60,
            cluster_detection_method="slurm" if plan.coordinator is None else None)
    except Exception as e:  # a port in use, an address that does not resolve, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise JtlError(f"process {plan.process_id} of {plan.num_processes} could not start "
                       f"jax.distributed at {plan.where}: {first}") from e
    finally:
        watchdog.cancel()
    log.info("process %d of %d, %d local / %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())
    return jax.process_count() > 1


def plan_from_env(env: dict[str, str] | None = None) -> Plan | None:
    """The run `env` (default: this process's environment) describes, None for one process.
    A `JTL_COORDINATOR` without its partners is a mistake named in one line."""
    env = dict(os.environ if env is None else env)
    coordinator = env.get("JTL_COORDINATOR")
    if coordinator:
        return _jtl_plan(coordinator, env)
    if not all(k in env for k in SLURM_STEP):  # no srun step: an allocation's shell
        return None
    try:
        n, pid = int(env["SLURM_STEP_NUM_TASKS"]), int(env["SLURM_PROCID"])
    except ValueError:
        return None
    if n <= 1:
        return None
    step = f"{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', env.get('SLURM_STEPID', '?'))}"
    return Plan(n, pid, None, f"SLURM step {step}'s first node")


def _jtl_plan(coordinator: str, env: dict[str, str]) -> Plan:
    how = ("set JTL_NUM_PROCESSES=<number of processes> and JTL_PROCESS_ID=<0 .. N-1> in each "
           "process beside JTL_COORDINATOR (or unset JTL_COORDINATOR to train in one process)")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise JtlError(f"JTL_COORDINATOR={coordinator}: expected host:port of process 0, "
                       "e.g. node01:12345")
    values = {}
    for key in ("JTL_NUM_PROCESSES", "JTL_PROCESS_ID"):
        raw = env.get(key)
        if raw is None or not raw.strip():
            raise JtlError(f"JTL_COORDINATOR={coordinator} is set but {key} is not: {how}")
        try:
            values[key] = int(raw)
        except ValueError:
            raise JtlError(f"{key}={raw!r}: an integer; {how}") from None
    n, pid = values["JTL_NUM_PROCESSES"], values["JTL_PROCESS_ID"]
    if n < 1 or not 0 <= pid < n:
        raise JtlError(f"JTL_PROCESS_ID={pid} with JTL_NUM_PROCESSES={n}: the id must be in "
                       f"0 .. {max(n - 1, 0)}, one per process")
    return Plan(n, pid, coordinator, coordinator)


def init_timeout() -> float:
    raw = os.environ.get("JTL_INIT_TIMEOUT")
    if raw is None or not raw.strip():
        return INIT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise JtlError(f"JTL_INIT_TIMEOUT={raw!r}: the seconds a process waits for the others "
                       f"to join, a positive number (default {INIT_TIMEOUT:g})")
    return value


def missing(plan: Plan, coordinator_listens: bool | None) -> str:
    """Which processes a process that waited in vain can name: process 0 cannot tell which of
    the others joined; another process knows whether process 0 (the coordinator) listens."""
    others = [i for i in range(plan.num_processes) if i != plan.process_id]
    if plan.coordinator is not None and plan.process_id != 0 and coordinator_listens is False:
        return "process 0 (the coordinator) is not listening there"
    if plan.process_id == 0 and len(others) == 1:
        return f"process {others[0]} did not join"
    names = f"{others[0]}" if len(others) == 1 else f"{others[0]} .. {others[-1]}"
    return f"not all of processes {names} joined"


def _give_up(plan: Plan, timeout: float) -> None:
    """The watchdog's end of a start-up that waited `timeout` s: one line, exit 2. The main
    thread is inside XLA's connect and cannot be interrupted, hence `os._exit`."""
    listens = _listens(plan.coordinator) if plan.coordinator and plan.process_id else None
    how = (f"start each missing one with this JTL_COORDINATOR, JTL_NUM_PROCESSES="
           f"{plan.num_processes} and its JTL_PROCESS_ID" if plan.coordinator
           else "check the step's other tasks")
    print(f"jtl: error: process {plan.process_id} of {plan.num_processes} waited "
          f"{timeout:g} s at {plan.where}: {missing(plan, listens)}; {how}, or raise "
          "JTL_INIT_TIMEOUT", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(2)


def _listens(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
            return True
    except OSError:
        return False


def _has_accelerator() -> bool:
    """Without starting a backend (which must come after `initialize`)."""
    import importlib.util

    return any(importlib.util.find_spec(m) is not None
               for m in ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu"))


def is_primary() -> bool:
    """The process that writes the run dir."""
    return jax.process_index() == 0
