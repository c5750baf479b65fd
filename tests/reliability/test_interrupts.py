"""Kills, Ctrl-C and a full disk at known steps: the same command resumes to the same result
as an uninterrupted run (these worked on the old main, except that Ctrl-C and a full disk
printed tracebacks; kept as regression tests). Faults come from the trainer's `JTL_FAULT`
hook, never from racing a sleep."""

from __future__ import annotations

import pytest

from jtl import rundir
from tests.reliability.kit import (
    ARGS,
    assert_same_params,
    child,
    cli,
    metric_steps,
    params_at,
    summary,
    without_time,
)


def _resumes_identically(run, reference, monkeypatch, capsys):
    monkeypatch.delenv("JTL_FAULT", raising=False)
    code, _, err = cli([*ARGS, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 0, err
    assert without_time(summary(run)) == without_time(summary(reference))
    assert_same_params(params_at(run), params_at(reference))
    steps = metric_steps(run)
    assert steps == sorted(set(steps)), "duplicate metrics rows after the resume"


def test_ctrl_c(reference, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    monkeypatch.setenv("JTL_FAULT", "sigint@30")
    code, _, err = cli([*ARGS, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 130
    assert "interrupted at step 30 (last checkpoint: step 20); run the same command" in err
    assert "Traceback" not in err and rundir.status(run) == "running"
    _resumes_identically(run, reference, monkeypatch, capsys)


def test_disk_full(reference, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    monkeypatch.setenv("JTL_FAULT", "enospc@33")
    code, _, err = cli([*ARGS, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and "disk full" in err and err.count("\n") == 1
    _resumes_identically(run, reference, monkeypatch, capsys)


@pytest.mark.parametrize("fault", ["sigkill@30", "sigkill-in-save@20"])
def test_sigkill(fault, reference, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    proc = child([*ARGS, f"hydra.run.dir={run}"], JTL_FAULT=fault)
    assert proc.returncode == -9, proc.stderr
    assert rundir.read_summary(run) is None
    _resumes_identically(run, reference, monkeypatch, capsys)
