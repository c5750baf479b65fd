"""`python -m jtl.train` / `jtl-train`: Hydra composes `conf/`, `train_and_evaluate` runs it.

One error path: a mistake the user can fix (`JtlError`, Hydra's own config errors) is one line
`jtl: error: ...` and exit 2; Ctrl-C says where to resume and exits 130; `debug=true` shows
tracebacks. A `-m` sweep runs every job, then names the failed ones and exits 1, whatever
launcher ran them (`hydra/launcher=joblib`, `submitit_slurm`, ...): each failed job appends a
line to `<sweep dir>/failed_jobs.jsonl` and `SweepFailures` (a Hydra callback, in the
launching process) reads it back.
"""

from __future__ import annotations

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


class SweepFailures(Callback):
    """Registered in conf/config.yaml (`hydra.callbacks`): runs in the process that launched a
    sweep, before and after all its jobs, wherever the jobs ran."""

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        # A re-run of a sweep reports its own failures, not the last run's.
        (Path(config.hydra.sweep.dir) / rundir.SWEEP_FAILURES).unlink(missing_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        FAILED_JOBS.extend(rundir.read_sweep_failures(config.hydra.sweep.dir))


def _debug() -> bool:
    return os.environ.get("JTL_DEBUG", "") not in ("", "0") or any(
        a.lstrip("+") in ("debug=true", "debug=True") for a in sys.argv[1:])


def main() -> None:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from jtl.train.trainer import RunInterrupted

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; the errors are printed here
    try:
        _main()
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
    except (JtlError, HydraException, OmegaConfBaseException, OSError) as e:
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
