"""A completed result is never overwritten by a failure (issue 8, second bullet).

On the old main any failing re-run of a finished dir (other method, data missing, corrupt
checkpoint) replaced its completed summary.json with `status: failed`, and `jtl.report`
dropped the run.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
from sklearn.datasets import load_digits

from jtl import rundir
from tests.reliability.kit import ARGS, cli, summary


def test_rerun_with_another_method_keeps_the_summary(reference, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = summary(run)
    code, _, _ = cli([*ARGS, "method=dann", f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and summary(run) == before


def test_rerun_with_data_missing_keeps_the_summary(tmp_path, monkeypatch, capsys):
    d = load_digits()
    np.savez(tmp_path / "t.npz", x=(d.images / 16).astype(np.float32), y=d.target)
    args = [*ARGS, "domain@target=npz", f"target.path={tmp_path / 't.npz'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    assert cli(args, monkeypatch, capsys)[0] == 0
    before = summary(tmp_path / "run")
    (tmp_path / "t.npz").unlink()
    code, _, _ = cli(args, monkeypatch, capsys)
    assert code == 0 and summary(tmp_path / "run") == before  # completed: nothing to load


def test_rerun_with_a_corrupt_checkpoint_keeps_the_summary(reference, tmp_path, monkeypatch,
                                                           capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = summary(run)
    for f in (run / "checkpoints" / "40").rglob("*"):
        if f.is_file():
            f.write_bytes(b"")
    code, _, _ = cli([*ARGS, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 0 and summary(run) == before


def test_a_failure_goes_to_failed_json_beside_a_completed_summary(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = summary(run)
    rundir.record_failure(run, {"error": "JtlError: boom"})
    assert summary(run) == before
    assert json.loads((run / rundir.FAILED).read_text())["error"] == "JtlError: boom"
