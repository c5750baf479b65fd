"""A grid cell killed by a signal (the OOM killer, `kill -9`, SLURM preemption) is named by the
launching process, written to failed_jobs.jsonl, the other cells finish, exit 1, and a re-run
trains only it (issue 21). Kept beside the launcher tests, out of tests/reliability/'s time
budget: each runs a real launcher with child processes (~10-20 s).

On 1354aff: a joblib `TerminatedWorkerError` / submitit `UncompletedJobError` traceback, no cell
named, no failed_jobs.jsonl, the other in-flight cell killed too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jtl import rundir
from tests.conftest import FAST, ROOT

# Two cells of 20 steps, a checkpoint at 10: a kill at step 15 leaves a resumable cell.
CELLS = [*FAST, "trainer.steps=20", "trainer.eval_every=20", "trainer.checkpoint_every=10",
         "trainer.log_every=10", "seed=0,1", "hydra.sweep.subdir=seed${seed}"]
KILL_SEED1 = {"JTL_FAULT": "sigkill@15", "JTL_FAULT_CELL": "1"}  # cell 1 is seed=1


def jtl_sweep(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jtl.train", "-m", *CELLS, *args], cwd=ROOT,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **env},
                          capture_output=True, text=True, timeout=300)


def assert_cell_1_named_killed(res: subprocess.CompletedProcess, sweep: Path,
                               why: str = "killed by signal 9 (SIGKILL)") -> None:
    assert res.returncode == 1, res.stderr[-3000:]
    assert "1 job(s) of the sweep failed" in res.stderr
    assert f"  {sweep / 'seed1'}: {why}" in res.stderr
    ((dead, reason),) = rundir.read_sweep_failures(sweep)
    assert dead == sweep / "seed1" and reason.startswith(why)
    assert "Traceback" not in res.stderr
    assert rundir.is_completed(sweep / "seed0")  # the other cell in flight finished
    assert not rundir.is_completed(sweep / "seed1")


@pytest.mark.slow  # 27 s; a killed cell is named under submitit_local in the default run
def test_a_killed_cell_under_cpu_pool_is_named_and_the_rerun_trains_only_it(tmp_path):
    sweep = tmp_path / "grid"
    args = ["hydra/launcher=cpu_pool", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    assert_cell_1_named_killed(jtl_sweep(*args, **KILL_SEED1), sweep)
    done = (sweep / "seed0" / rundir.SUMMARY).stat().st_mtime_ns
    again = jtl_sweep(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert rundir.is_completed(sweep / "seed1")
    assert (sweep / "seed0" / rundir.SUMMARY).stat().st_mtime_ns == done  # not retrained
    assert rundir.read_sweep_failures(sweep) == []


def test_a_killed_cell_under_submitit_local_is_named(tmp_path):
    sweep = tmp_path / "grid"
    res = jtl_sweep("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
                    f"hydra.sweep.dir={sweep}", **KILL_SEED1)
    # The task's exit status stays with submitit's controller: "died without a result".
    assert_cell_1_named_killed(res, sweep, why="killed: its process died without a result")


