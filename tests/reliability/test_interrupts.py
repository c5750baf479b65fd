"""Kills, Ctrl-C and a full disk at known steps: the same command resumes to the same result
as an uninterrupted run (these worked on the old main, except that Ctrl-C and a full disk
printed tracebacks; kept as regression tests). Faults come from the trainer's `JTL_FAULT`
hook or a filesystem sized to fill at a known save, never from racing a sleep.

The full disk is orbax's (issue 21): tensorstore raises a ValueError naming the errno, which
the old main printed as ~470 lines of tracebacks; its disk-full test had injected an OSError
in the training loop, which is not what orbax raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jtl import rundir
from tests.reliability.kit import (
    ARGS,
    assert_same_params,
    checkpoint_steps,
    child,
    cli,
    metric_steps,
    params_at,
    remount,
    summary,
    tmpfs,
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


def _footprint(folder: Path) -> int:
    """Bytes `folder` takes on a filesystem of 4 KiB pages (tmpfs)."""
    pages = sum(-(-p.stat().st_size // 4096) if p.is_file() else 1 for p in folder.rglob("*"))
    return 4096 * (pages + 1)


def test_disk_full_on_a_small_filesystem(reference, tmp_path, monkeypatch, capsys):
    """A real full disk: a tmpfs that holds one checkpoint of the run but not two, so the save
    at step 40 fails inside orbax with what tensorstore raises there (a ValueError
    `RESOURCE_EXHAUSTED ... [os_error_code='28']`, not an OSError). Freeing space (a larger
    tmpfs) and running the same command resumes from step 20 to the uninterrupted result."""
    one = _footprint(reference / rundir.CHECKPOINTS / "20")
    with tmpfs(tmp_path / "disk", str(one * 3 // 2 + (64 << 10))) as disk:
        run = disk / "run"
        code, _, err = cli([*ARGS, f"hydra.run.dir={run}"], monkeypatch, capsys)
        assert code == 2 and "disk full" in err and err.count("\n") == 1, err[-3000:]
        assert checkpoint_steps(run) == [20]
        remount(disk, "size=64m")
        _resumes_identically(run, reference, monkeypatch, capsys)


def test_disk_full_as_orbax_raises_it(reference, tmp_path, monkeypatch, capsys):
    """Where no filesystem can be mounted (CI): `JTL_FAULT=enospc@33` makes orbax's next
    array write (step 40's save) raise tensorstore's disk-full ValueError inside orbax's own
    background save; the error recorded is that one, and the user sees one line."""
    run = tmp_path / "run"
    monkeypatch.setenv("JTL_FAULT", "enospc@33")
    code, _, err = cli([*ARGS, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and "disk full" in err and err.count("\n") == 1, err[-3000:]
    failure = json.loads((run / rundir.FAILED).read_text())["error"]
    assert failure.startswith("ValueError: RESOURCE_EXHAUSTED") and "os_error_code='28'" in \
        failure
    _resumes_identically(run, reference, monkeypatch, capsys)


@pytest.mark.parametrize("fault", ["sigkill@30", "sigkill-in-save@20"])
def test_sigkill(fault, reference, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    proc = child([*ARGS, f"hydra.run.dir={run}"], JTL_FAULT=fault)
    assert proc.returncode == -9, proc.stderr
    assert rundir.read_summary(run) is None
    _resumes_identically(run, reference, monkeypatch, capsys)
