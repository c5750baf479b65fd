"""Run dirs written by the main before issue 21 (1354aff; tests/fixtures/make_old_runs.py)
and by a452276, before issue 20 (old_runs_a452276, made the same way, without the npz run)
reopen as the completed runs they are: the same command returns them without retraining, under
their old fingerprint, and load_run / jtl.report read them. Guards every change to the run-dir
contract, the config schema and the identity (inputs, trainer.lanes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import FAST, compose_cfg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# 1354aff: before issue 21; a452276: before issue 20's data model (float32 splits, two roles).
MAINS = ["1354aff", "a452276"]
STEPS = ["trainer.steps=20", "trainer.eval_every=10", "trainer.checkpoint_every=20",
         "trainer.log_every=10", "trainer.keep_checkpoints=1", "model.hidden=[8]"]
RUNS = {"source_only": [], "dann": ["method=dann", "method.disc_hidden=8"],
        "npz_target": ["domain@target=npz", "target.path=digits300.npz"]}


@pytest.fixture(params=MAINS)
def old_runs(tmp_path, monkeypatch, request) -> Path:
    root = tmp_path / "old_runs"
    shutil.copytree(FIXTURES / f"old_runs_{request.param}", root)
    monkeypatch.chdir(root)  # the npz run was made with a path relative to this dir
    return root


@pytest.mark.parametrize("name", list(RUNS))
def test_the_same_command_returns_the_old_run_without_retraining(old_runs, name, monkeypatch):
    from jtl.train import train_and_evaluate, trainer

    if not (old_runs / name).exists():
        pytest.skip("a452276 records an npz by its absolute path: no copyable npz run dir")
    old = json.loads((old_runs / name / "summary.json").read_text())
    monkeypatch.setattr(trainer, "_train_lanes", lambda *a, **k: pytest.fail("retrained"))
    s = train_and_evaluate(compose_cfg([*FAST, *STEPS, *RUNS[name]]), old_runs / name)
    assert s["status"] == "completed"
    assert s["fingerprint"] == old["fingerprint"]
    assert s["target/test/accuracy"] == old["target/test/accuracy"]


def test_load_run_and_report_read_them(old_runs):
    from jtl.analysis import load_run
    from jtl.results.report import build_report

    run = load_run(old_runs / "dann")
    assert run.summary()["status"] == "completed"
    assert run.predict("target", "test").shape[0] > 0
    rep = build_report(old_runs)
    assert "dann" in rep.markdown and "source_only" in rep.markdown
