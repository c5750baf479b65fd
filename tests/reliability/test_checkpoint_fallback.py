"""A corrupt latest checkpoint costs one checkpoint interval, not the run (issue 8, fifth
bullet). On the old main it gave a long orbax traceback and no fallback."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import orbax.checkpoint as ocp

from jtl import rundir
from tests.conftest import compose_cfg
from tests.reliability.kit import (
    ARGS,
    assert_same_params,
    checkpoint_steps,
    params_at,
    summary,
    without_time,
)


def _unfinished_copy(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / rundir.SUMMARY).unlink()
    return run


def test_truncated_latest_checkpoint_falls_back_to_the_previous(reference, tmp_path, caplog):
    from jtl.train import train_and_evaluate

    run = _unfinished_copy(reference, tmp_path)
    assert checkpoint_steps(run) == [20, 40]
    for f in (run / "checkpoints" / "40").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="jtl"):
        s = train_and_evaluate(compose_cfg(ARGS), run)
    (line,) = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert "step 40" in line and "\n" not in line
    assert without_time(s) == without_time(summary(reference))
    assert_same_params(params_at(run), params_at(reference))
    assert any((run / "checkpoints.corrupt").iterdir())


def test_non_finite_checkpoint_is_not_resumed(reference, tmp_path):
    """A checkpoint holding NaN (written by an older jtl) is skipped like a corrupt one."""
    from jtl.train import train_and_evaluate
    from jtl.train.checkpoint import manager

    run = _unfinished_copy(reference, tmp_path)
    with manager(run / "checkpoints") as m:
        state = m.restore(40)
    state["params"]["head"]["bias"] = np.full_like(state["params"]["head"]["bias"], np.nan)
    shutil.rmtree(run / "checkpoints" / "40")
    with manager(run / "checkpoints") as m:
        m.save(40, args=ocp.args.StandardSave(state))
    s = train_and_evaluate(compose_cfg(ARGS), run)
    assert without_time(s) == without_time(summary(reference))
    assert_same_params(params_at(run), params_at(reference))  # retrained from step 20
