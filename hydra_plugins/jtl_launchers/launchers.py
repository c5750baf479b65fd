"""Launchers that outlive their cells: a cell whose process dies (SIGKILL, the OOM killer, a
SLURM preemption or time limit) is that cell's failure only. The launching process names it
(`jtl: error: job N (<run dir>): killed by signal 9 (SIGKILL)`), appends it to
`<sweep dir>/failed_jobs.jsonl` as a cell that failed in Python does itself, lets the other
cells finish and returns; jtl then exits 1 naming them all. A killed cell keeps its
checkpoints: a re-run of the sweep resumes it and returns the completed cells.

`adopt` (called by jtl's `SweepFailures` callback before Hydra builds the launcher) swaps
Hydra's launchers for these, so `hydra/launcher=cpu_pool`/`joblib`, `submitit_local`,
`submitit_slurm` and `slurm` keep their configs:
- `PoolLauncher` for joblib's: each cell in its own process, `n_jobs` at once (joblib's loky
  pool kills every worker when one dies); joblib's other keys do not apply.
- `LocalLauncher` / `SlurmLauncher`: hydra-submitit-launcher's, waiting for every job instead
  of raising at the first one lost.

Loaded by Hydra's plugin scan of the `hydra_plugins` namespace: imports stay light. No
`from __future__ import annotations`: the scan runs this module before it is in sys.modules.
"""

import logging
import multiprocessing
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import DictConfig, open_dict, read_write

log = logging.getLogger(__name__)


def adopt(launcher: DictConfig) -> None:
    """Point `hydra.launcher` at jtl's launcher for Hydra's joblib or submitit one (same
    parameters); any other launcher is left as it is."""
    ours = {"hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher": PoolLauncher,
            "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher":
                LocalLauncher,
            "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher":
                SlurmLauncher}.get(str(launcher.get("_target_")))
    if ours is None:
        return
    Plugins.instance().register(ours)  # also where Hydra's scan cannot see this package
    with read_write(launcher), open_dict(launcher):
        launcher._target_ = f"{ours.__module__}.{ours.__name__}"


def cell_config(hydra_context: HydraContext, config: DictConfig, overrides: Sequence[str],
                num: int, job_id: str) -> tuple[DictConfig, Path]:
    """A cell's config, with `hydra.job.num`/`id` set as the launchers set them, and its run
    dir (`hydra.sweep.dir/hydra.sweep.subdir`, absolute, as `run_job` makes it)."""
    cfg = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(cfg):
        cfg.hydra.job.id, cfg.hydra.job.num = job_id, num
    HydraConfig.instance().set_config(cfg)  # `${hydra:...}` in the subdir
    return cfg, Path(os.path.abspath(Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)))


def lost_cell(cfg: DictConfig, run_dir: Path, overrides: Sequence[str], reason: str) -> JobReturn:
    """Name a cell whose process died, as the cell names its own failures (one line and a row
    of failed_jobs.jsonl): a completed job returning None, as jtl's failed jobs return."""
    from jtl import rundir

    print(f"jtl: error: job {cfg.hydra.job.num} ({run_dir}): {reason}", file=sys.stderr,
          flush=True)
    rundir.append_sweep_failure(cfg.hydra.sweep.dir, run_dir, reason)
    return JobReturn(overrides=list(overrides), hydra_cfg=cfg, working_dir=str(run_dir),
                     task_name=str(cfg.hydra.job.name), status=JobStatus.COMPLETED)


def exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        return (f"killed by signal {-code}{name}"
                + (": out of memory, or killed by a user or the system" if code == -9 else ""))
    return f"its process exited (code {code}) without a result"


# ---------------------------------------------------------------------------------------------
# cpu_pool: one process per cell


def _run_cell(payload: bytes, conn: Any) -> None:
    """A cell's process: Hydra's `run_job` as a joblib worker runs it; its JobReturn goes back
    through `conn`. Ctrl-C ends it quietly (the cell resumes on a re-run)."""
    import cloudpickle

    hydra_context, config, task_function, singleton_state, overrides, num, job_id = \
        cloudpickle.loads(payload)
    setup_globals()
    Singleton.set_state(singleton_state)
    try:
        cfg, _ = cell_config(hydra_context, config, overrides, num, job_id)
        ret = run_job(hydra_context=hydra_context, task_function=task_function, config=cfg,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    except KeyboardInterrupt:
        print(f"jtl: job {num} interrupted; run the same command to resume", file=sys.stderr)
        sys.exit(130)
    try:
        data = cloudpickle.dumps(ret)
    except Exception as e:  # an unpicklable return value or error: keep its text
        ret.status, ret.return_value = JobStatus.FAILED, RuntimeError(f"{type(e).__name__}: {e}")
        data = cloudpickle.dumps(ret)
    conn.send_bytes(data)
    conn.close()


class PoolLauncher(Launcher):
    """Grid cells as processes on this machine, `n_jobs` at once, each cell its own process
    (started fresh: a dead cell takes nothing else with it)."""

    def __init__(self, n_jobs: int = -1, **joblib_keys: Any) -> None:
        self.n_jobs = n_jobs  # joblib's meaning: -1 is one cell per CPU core
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        from multiprocessing.connection import wait

        import cloudpickle

        from jtl.errors import JtlError

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        n = (os.cpu_count() or 1) if self.n_jobs == -1 else int(self.n_jobs)
        if n < 1:
            raise JtlError(f"hydra.launcher.n_jobs={self.n_jobs}: the number of cells run at "
                           "once, at least 1 (or -1: one per CPU core)")
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        name = self.config.hydra.job.name
        cells = []
        for i, overrides in enumerate(job_overrides):
            num = initial_job_idx + i
            cfg, run_dir = cell_config(self.hydra_context, self.config, overrides, num,
                                       f"{name}_{num}")
            cells.append((num, list(overrides), cfg, run_dir))
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
        state = Singleton.get_state()
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads
        results: dict[int, JobReturn] = {}
        running: dict[Any, tuple[Any, tuple]] = {}  # receiving end -> (process, cell)
        todo = list(reversed(cells))
        try:
            while todo or running:
                while todo and len(running) < n:
                    cell = todo.pop()
                    num, overrides, _, _ = cell
                    payload = cloudpickle.dumps((self.hydra_context, self.config,
                                                 self.task_function, state, overrides, num,
                                                 f"{name}_{num}"))
                    recv, send = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=_run_cell, args=(payload, send),
                                       name=f"jtl-cell-{num}")
                    proc.start()
                    send.close()  # the cell's end: EOF here once the cell's process is gone
                    running[recv] = (proc, cell)
                for recv in wait(list(running)):
                    proc, (num, overrides, cfg, run_dir) = running.pop(recv)
                    try:
                        ret = cloudpickle.loads(recv.recv_bytes())
                    except EOFError:
                        ret = None
                    recv.close()
                    proc.join(timeout=60)
                    if proc.is_alive():  # returned its result but hangs on the way out
                        proc.kill()
                        proc.join()
                    results[num] = ret if ret is not None else lost_cell(
                        cfg, run_dir, overrides, exit_reason(proc.exitcode))
        except KeyboardInterrupt:  # the cells got the same Ctrl-C: let them stop, then stop
            for proc, _ in running.values():
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
            raise
        return [results[num] for num, *_ in cells]


# ---------------------------------------------------------------------------------------------
# submitit: wait for every job, name the lost ones


class _WaitsForAll(submitit_launcher.BaseSubmititLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        """hydra-submitit-launcher's launch (the same executor and parameters), except that a
        job lost without a result is named instead of raising, after all jobs ended."""
        import submitit
        from omegaconf import OmegaConf

        assert self.config is not None and self.hydra_context is not None
        params = dict(self.params)
        init_keys = {"submitit_folder", "max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR, folder=params["submitit_folder"],
            **({f"{self._EXECUTOR}_max_num_timeout": params["max_num_timeout"]}
               if "max_num_timeout" in params else {}))
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v
                                      for k, v in params.items() if k not in init_keys})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        nums = [initial_job_idx + i for i in range(len(job_overrides))]
        for num, overrides in zip(nums, job_overrides, strict=True):
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
        jobs = executor.map_array(self, [list(o) for o in job_overrides],
                                  ["hydra.sweep.dir"] * len(nums), nums,
                                  [f"job_id_for_{n}" for n in nums],
                                  [Singleton.get_state()] * len(nums))
        results = []
        for num, overrides, job in zip(nums, job_overrides, jobs, strict=True):
            reason = self._lost(job)
            if reason is None:
                try:
                    results.append(job.results()[0])
                    continue
                except submitit.core.utils.UncompletedJobError:
                    reason = (f"{self._EXECUTOR} job {job.job_id} ended without a result "
                              f"(state {job.state}: killed, preempted, out of memory or out of "
                              f"time); log: {job.paths.stderr}")
                except Exception as e:  # the task failed outside the cell (Hydra's job setup)
                    reason = error_line(str(e))
            cfg, run_dir = cell_config(self.hydra_context, self.config, overrides, num,
                                       str(job.job_id))
            results.append(lost_cell(cfg, run_dir, overrides, reason))
        return results

    def _lost(self, job: Any) -> str | None:
        """Why `job` ended without a result, when known without waiting; None: ask results()."""
        return None


def error_line(text: str) -> str:
    """The exception line of a traceback's text (`ValueError: ...`), else its first line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", ln)]
    return (errors or lines or ["unknown error"])[-1 if errors else 0]


class LocalLauncher(_WaitsForAll, submitit_launcher.LocalLauncher):
    def _lost(self, job: Any) -> str | None:
        job.wait()  # the job's process has ended: its result is on the local disk or never
        if job.paths.result_pickle.exists():
            return None
        return ("killed: its process died without a result (a signal, e.g. the OOM killer); "
                f"log: {job.paths.stderr}")


class SlurmLauncher(_WaitsForAll, submitit_launcher.SlurmLauncher):
    pass
