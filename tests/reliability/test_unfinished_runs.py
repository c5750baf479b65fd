"""Nothing mid-training is read as a result (issue 8, eighth bullet).

On the old main `init_from` a killed run silently loaded its mid-training checkpoint, and
`jtl.measure` on an unfinished run wrote values that the report showed beside the final
accuracies.
"""

from __future__ import annotations

import shutil

import pytest

from jtl import rundir
from jtl.errors import JtlError
from tests.conftest import compose_cfg
from tests.reliability.kit import ARGS


@pytest.fixture
def killed(reference, tmp_path):
    run = tmp_path / "killed"
    shutil.copytree(reference, run)
    (run / rundir.SUMMARY).unlink()
    shutil.rmtree(run / "checkpoints" / "40")
    return run


def test_init_from_an_unfinished_run_is_refused_unless_a_step_is_asked(killed, tmp_path):
    from jtl.train import train_and_evaluate

    args = [*ARGS, f"init_from={killed}", "dont_load='head/.*'", "trainer.steps=5"]
    with pytest.raises(JtlError, match="not a completed run"):
        train_and_evaluate(compose_cfg(args), tmp_path / "a")
    s = train_and_evaluate(compose_cfg([*args, "init_from_step=20"]), tmp_path / "b")
    assert s["status"] == "completed"


def test_measure_refuses_an_unfinished_run_and_records_its_step(killed):
    from jtl.measures.run import FeatureOptions, measure_run

    with pytest.raises(JtlError, match="not a completed run"):
        measure_run(killed, {"coral": {}})
    measure_run(killed, {"coral": {}}, FeatureOptions(step=20))
    values, steps = rundir.read_measures(killed)
    assert "coral" in values and steps == {"coral": 20}


def test_report_flags_a_measure_of_another_step(reference, tmp_path):
    from jtl.measures.run import FeatureOptions, measure_run

    sweep = tmp_path / "sweep"
    shutil.copytree(reference, sweep / "0")
    measure_run(sweep / "0", {"coral": {}}, FeatureOptions(step=20))
    from jtl.results.report import build_report

    rep = build_report(sweep)
    assert any("another checkpoint step" in w for w in rep.warnings)
