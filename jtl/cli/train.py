"""`python -m jtl.train` / `jtl-train`: Hydra composes `conf/`, `train_and_evaluate` runs it.

One error path: a mistake the user can fix (`JtlError`, Hydra's own config errors) is one line
`jtl: error: ...` and exit 2; Ctrl-C says where to resume and exits 130; `debug=true` shows
tracebacks. A `-m` sweep runs every job, then names the failed ones and exits 1, whatever
launcher ran them (`hydra/launcher=joblib`, `submitit_slurm`, ...): each failed job appends a
line to `<sweep dir>/failed_jobs.jsonl` and `SweepFailures` (a Hydra callback, in the
launching process) reads it back. A cell whose process dies (a signal, out of memory, a SLURM
preemption) is named by the launching process itself (hydra_plugins/jtl_launchers). One
launching process per sweep dir: `SweepFailures` holds `<sweep dir>/.jtl-sweep.lock` for the
sweep's whole duration.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from jtl import rundir
from jtl.errors import JtlError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger("jtl")
# (run dir, one-line reason) of every failed job of the sweep this process launched.
FAILED_JOBS: list[tuple[Path, str]] = []
# A single run's exception, re-raised by main() once Hydra returns (Hydra would first print
# its own "Error executing job with overrides" line).
RUN_ERROR: list[Exception] = []
# Held by the process launching a sweep, in the sweep dir (beside failed_jobs.jsonl).
SWEEP_LOCK = ".jtl-sweep.lock"
# The sweep lock this process holds (a module global: callbacks are pickled into the jobs).
_SWEEP_LOCKS = contextlib.ExitStack()


class Refused(BaseException):
    """A JtlError raised from a Hydra callback: Hydra turns a callback's Exceptions into
    warnings and carries on; this passes through to main(), which prints it."""


def one_line(e: BaseException) -> str:
    """An error as one line: Hydra's multi-line messages keep their first line and options."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    head, rest = lines[0], lines[1:]
    if rest and rest[0].startswith("Available options"):
        opts = [ln for ln in rest[1:] if not ln.startswith(("Config search path", "provider="))]
        head += f" (available: {', '.join(opts[:30])})"
    return head


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _main(cfg: DictConfig) -> float | None:
    from jtl.train import train_and_evaluate

    for noisy in ("absl", "jax"):  # orbax's and jax's INFO lines would drown the progress bar
        logging.getLogger(noisy).setLevel(logging.WARNING)
    hc = HydraConfig.get()
    workdir = Path(hc.runtime.output_dir)
    on_complete = None
    if cfg.get("measure"):  # `+measure=[pad,mmd]`: unknown names fail now, not after training
        from jtl.measures.run import end_of_training

        on_complete = end_of_training(cfg.measure)
    try:
        check_output_subdir(hc.output_subdir)  # a cell's own override: at least no wrong result
        with _fault_for_this_cell(hc.job.num if hc.mode.name == "MULTIRUN" else None):
            summary = train_and_evaluate(cfg, workdir, overrides=list(hc.overrides.task),
                                         on_complete=on_complete)
    except Exception as e:
        if cfg.get("debug"):
            raise
        if hc.mode.name != "MULTIRUN":
            RUN_ERROR.append(e)
            return None
        reason = one_line(e) if isinstance(e, JtlError) else f"{type(e).__name__}: {e}"
        if not isinstance(e, JtlError):
            traceback.print_exc()
        print(f"jtl: error: job {hc.job.num} ({workdir}): {reason}", file=sys.stderr, flush=True)
        rundir.append_sweep_failure(hc.sweep.dir, workdir, reason)
        return None
    runs = summary.get("runs") or {None: summary}  # trainer.seeds: one run per seed
    for seed, run in runs.items():
        at = "" if seed is None else f" (seed {seed})"
        for role in ("source", "target"):
            if f"{role}/test/accuracy" in run:
                print(f"{role} {run[role]} test accuracy{at}: {run[f'{role}/test/accuracy']:.4f}")
    print(f"run dir: {workdir}", flush=True)
    return summary.get("target/test/accuracy")


@contextlib.contextmanager
def _fault_for_this_cell(num: int | None):
    """Test hook beside the trainer's `JTL_FAULT`: `JTL_FAULT_CELL=<job num>` keeps the fault
    for that cell of a sweep only (the others run without it, in any launcher)."""
    cell = os.environ.get("JTL_FAULT_CELL")
    fault = os.environ.pop("JTL_FAULT", None) if cell is not None and str(num) != cell \
        else None
    try:
        yield
    finally:
        if fault is not None:
            os.environ["JTL_FAULT"] = fault


def check_output_subdir(subdir: object) -> None:
    """Hydra writes `<run dir>/<output_subdir>/config.yaml` before the task runs, so with
    `.hydra` it would rewrite a run's saved config before jtl checks the dir holds a run of
    this config (and return another seed's result as this one's)."""
    if subdir is not None:
        raise JtlError(f"hydra.output_subdir={subdir}: jtl saves the run's config itself "
                       f"({rundir.CONFIG}), after checking the dir holds a run of this config; "
                       "Hydra would write it before that check. Leave hydra.output_subdir null")


def _output_subdir_overrides(config: DictConfig) -> None:
    """`check_output_subdir` for the launching process: the composed value and any value a
    sweep override (`hydra.output_subdir=null,meta`) gives a cell."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    check_output_subdir(config.hydra.output_subdir)
    for o in OverridesParser.create().parse_overrides(list(config.hydra.overrides.hydra)):
        if o.key_or_group == "hydra.output_subdir" and o.is_sweep_override():
            for v in o.sweep_string_iterator():
                check_output_subdir(None if v == "null" else v)


class SweepFailures(Callback):
    """Registered in conf/config.yaml (`hydra.callbacks`): runs in the process that launched a
    run or sweep, before and after all its jobs, wherever the jobs ran. Refusals pass through
    Hydra as `Refused`: nothing is written before them."""

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        try:
            check_output_subdir(config.hydra.output_subdir)
        except JtlError as e:
            raise Refused(e) from None

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        sweep = Path(config.hydra.sweep.dir)
        try:
            _output_subdir_overrides(config)
            # One launching process per sweep dir: a second would delete this one's failures
            # (below) and train into its cells.
            _SWEEP_LOCKS.enter_context(rundir.file_lock(
                sweep / SWEEP_LOCK, blocking=False,
                busy=f"sweep dir {sweep} is in use by another jtl sweep; wait for it to end, "
                     "or give this sweep another hydra.sweep.dir"))
        except JtlError as e:
            raise Refused(e) from None
        # A re-run of a sweep reports its own failures, not the last run's.
        (sweep / rundir.SWEEP_FAILURES).unlink(missing_ok=True)
        try:  # jtl's launchers for Hydra's joblib/submitit ones: a dead cell is named
            from hydra_plugins.jtl_launchers.launchers import adopt
        except ImportError:  # not installed beside jtl: Hydra's launchers as they are
            return
        adopt(config.hydra.launcher)

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        try:
            FAILED_JOBS.extend(rundir.read_sweep_failures(config.hydra.sweep.dir))
        finally:
            _SWEEP_LOCKS.close()


def _debug() -> bool:
    return os.environ.get("JTL_DEBUG", "") not in ("", "0") or any(
        a.lstrip("+") in ("debug=true", "debug=True") for a in sys.argv[1:])


def main() -> None:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from jtl.train.trainer import RunInterrupted

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; the errors are printed here
    try:
        try:
            _main()
        except Refused as r:
            raise r.args[0] from None
        finally:
            _SWEEP_LOCKS.close()  # however the sweep ended
        if RUN_ERROR:
            raise RUN_ERROR.pop()
    except RunInterrupted as e:
        where = (f"last checkpoint: step {e.checkpoint}" if e.checkpoint
                 else "no checkpoint yet")
        print(f"\njtl: interrupted at step {e.step} ({where}); run the same command to resume",
              file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("\njtl: interrupted", file=sys.stderr)
        sys.exit(130)
    except (JtlError, HydraException, OmegaConfBaseException, OSError, ValueError) as e:
        # A run dir that cannot be a dir, a symlinked job log (logging's ValueError).
        e = rundir.setup_error(e) or e
        if isinstance(e, ValueError) and not isinstance(e, (JtlError, HydraException,
                                                            OmegaConfBaseException)):
            raise
        # OSError from Hydra creating the run dir (read-only, disk full); its config errors
        # that subclass OSError stay config errors.
        if isinstance(e, OSError) and not isinstance(e, HydraException):
            cause = rundir.os_cause(e)
            if cause is None:
                raise
            e = rundir.os_error(cause, cause.filename or "the run dir")
        if _debug():
            raise
        print(f"jtl: error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    if FAILED_JOBS:
        print(f"jtl: {len(FAILED_JOBS)} job(s) of the sweep failed:", file=sys.stderr)
        for workdir, reason in FAILED_JOBS:
            print(f"  {workdir}: {reason}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
