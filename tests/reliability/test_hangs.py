"""No hangs (issue 21): every error path exits, and a multi-process start that waits says so.

On the old main a run whose `checkpoints/` was a file or not writable printed its error and
never exited: orbax's background save threads waited 300 s for signals from the part of the
save that had failed. A process started with `JTL_COORDINATOR` whose partner never came
printed nothing for minutes, then XLA aborted it with a C++ stack trace; without
`JTL_NUM_PROCESSES` it was a KeyError traceback; SLURM variables inherited inside an
`salloc` shell made a plain run try to join a multi-process job that did not exist.

Child processes run with a timeout well under the old hang, so a hang fails the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jtl import rundir
from jtl.errors import JtlError
from jtl.train import distributed
from tests.conftest import ROOT, compose_cfg
from tests.reliability.kit import ARGS, cli, summary, tmpfs

PROMPT = 120  # s: a child that fails at start-up ends well within this (the old hang: 300 s)


def _child(args: list[str], timeout: float = PROMPT, **env: str
           ) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m jtl.train ARGS` as a child process: (result, seconds it ran)."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "jtl.train", *args], cwd=ROOT,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **env},
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0


def _claimed(run: Path) -> Path:
    """A run dir jtl made (lock, saved config) and nothing else yet, as after a start that
    failed before its first step."""
    from jtl.train.trainer import _plain

    with rundir.claim(run, _plain(compose_cfg(ARGS))):
        pass
    return run


def _orbax_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if type(t).__name__ == "_SignalingThread" and t.is_alive()]


def test_checkpoints_a_regular_file_exits_with_one_line(tmp_path):
    run = _claimed(tmp_path / "run")
    (run / rundir.CHECKPOINTS).write_text("not a folder")
    proc, _ = _child([*ARGS, f"hydra.run.dir={run}"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and "is a file, not a folder" in proc.stderr
    assert (run / rundir.CHECKPOINTS).read_text() == "not a folder"


def test_unwritable_checkpoints_exit_with_one_line(tmp_path):
    """Read-only: as root a chmod does not stop writes, so a read-only tmpfs (skipped where
    it cannot be mounted); unprivileged, a chmod'ed folder."""
    run = _claimed(tmp_path / "run")
    ckpts = run / rundir.CHECKPOINTS
    if os.geteuid() == 0:
        with tmpfs(ckpts, "1m", read_only=True):
            proc, _ = _child([*ARGS, f"hydra.run.dir={run}"])
        says = "Read-only file system"
    else:
        ckpts.mkdir()
        ckpts.chmod(0o555)
        try:
            proc, _ = _child([*ARGS, f"hydra.run.dir={run}"])
        finally:
            ckpts.chmod(0o755)
        says = "Permission denied"
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    assert f"cannot write in {ckpts} ({says})" in proc.stderr


def test_a_save_failing_inside_orbax_leaves_no_thread_behind(tmp_path, monkeypatch, capsys):
    """The same file, found by orbax itself at the first save (the up-front check is off):
    the error ends the run, and no orbax thread is left waiting to keep the process alive."""
    from jtl.train import checkpoint

    monkeypatch.setattr(checkpoint, "check_writable", lambda directory: None)
    run = _claimed(tmp_path / "run")
    (run / rundir.CHECKPOINTS).write_text("not a folder")
    code, _, err = cli([*ARGS, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1, err[-3000:]
    assert _orbax_threads() == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_a_missing_partner_process_is_named_after_the_timeout(tmp_path):
    where = f"localhost:{_free_port()}"
    proc, _ = _child([*ARGS, f"hydra.run.dir={tmp_path / 'run'}"], JTL_COORDINATOR=where,
                     JTL_NUM_PROCESSES="2", JTL_PROCESS_ID="0", JTL_INIT_TIMEOUT="3")
    assert f"process 0 of 2: waiting for all 2 processes at {where}" in proc.stdout
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jtl: error: process 0 of 2 waited 3 s")
    assert "process 1 did not join" in lines[0]


def test_a_process_names_a_coordinator_that_does_not_listen():
    plan = distributed.Plan(3, 2, f"localhost:{_free_port()}", "there")
    assert "process 0 (the coordinator) is not listening" in distributed.missing(plan, False)
    assert distributed.missing(plan, True) == "not all of processes 0 .. 1 joined"
    assert distributed.missing(distributed.Plan(4, 0, "h:1", "h:1"), None) == \
        "not all of processes 1 .. 3 joined"


@pytest.mark.parametrize(("env", "says"), [
    ({"JTL_PROCESS_ID": "0"}, "JTL_NUM_PROCESSES is not"),
    ({"JTL_NUM_PROCESSES": "2"}, "JTL_PROCESS_ID is not"),
    ({"JTL_NUM_PROCESSES": "two", "JTL_PROCESS_ID": "0"}, "JTL_NUM_PROCESSES='two'"),
    ({"JTL_NUM_PROCESSES": "2", "JTL_PROCESS_ID": "2"}, "must be in 0 .. 1"),
], ids=["no-num-processes", "no-process-id", "num-not-int", "id-out-of-range"])
def test_an_incomplete_multi_process_setup_is_one_line(env, says, tmp_path, monkeypatch,
                                                       capsys):
    monkeypatch.setenv("JTL_COORDINATOR", "localhost:12345")
    for key in ("JTL_NUM_PROCESSES", "JTL_PROCESS_ID", "JTL_INIT_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = cli([*ARGS, f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and says in err, err


@pytest.mark.parametrize("value", ["soon", "0", "-3", "inf"])
def test_a_bad_init_timeout_is_one_line(value, monkeypatch):
    """(A unit test: with a valid setup, the old main would wait for the partner here.)"""
    monkeypatch.setenv("JTL_INIT_TIMEOUT", value)
    with pytest.raises(JtlError, match=f"JTL_INIT_TIMEOUT='{value}': the seconds"):
        distributed.init_timeout()
    monkeypatch.setenv("JTL_INIT_TIMEOUT", "2.5")
    assert distributed.init_timeout() == 2.5


# What an `salloc -n 2` shell holds: the allocation, no job step (srun sets SLURM_STEP_*).
SALLOC = {"SLURM_JOB_ID": "4242", "SLURM_JOBID": "4242", "SLURM_NTASKS": "2",
          "SLURM_NPROCS": "2", "SLURM_NNODES": "1", "SLURM_NODELIST": "localhost",
          "SLURM_JOB_NODELIST": "localhost", "SLURM_TASKS_PER_NODE": "2",
          "SLURM_JOB_NUM_NODES": "1", "SLURM_CLUSTER_NAME": "test", "SLURM_NODEID": "0"}
# One task of `srun -n 2` (what jax's own SLURM detection reads, plus the step's size).
SRUN = {**SALLOC, "SLURM_STEP_ID": "0", "SLURM_STEP_NODELIST": "localhost",
        "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NUM_NODES": "1", "SLURM_PROCID": "1",
        "SLURM_LOCALID": "1"}


def test_which_slurm_environments_are_a_multi_process_run():
    assert distributed.plan_from_env(SALLOC) is None
    assert distributed.plan_from_env({**SALLOC, "SLURM_PROCID": "0"}) is None
    assert distributed.plan_from_env({**SRUN, "SLURM_STEP_NUM_TASKS": "1"}) is None
    plan = distributed.plan_from_env(SRUN)
    assert (plan.num_processes, plan.process_id, plan.coordinator) == (2, 1, None)


def test_a_plain_run_inside_an_salloc_shell_is_one_process(tmp_path):
    run = tmp_path / "run"
    proc, _ = _child([*ARGS, f"hydra.run.dir={run}"], **SALLOC)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary(run)["status"] == "completed"
    assert "waiting for" not in proc.stdout
