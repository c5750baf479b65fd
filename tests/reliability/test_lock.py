"""One process per run dir (issue 8, third bullet).

On the old main two runs started into one dir at once both trained: metrics.jsonl got every
row twice and seed 1 resumed seed 0's checkpoint. Here the test holds the dir's lock (as a
running process would) and a second start fails at once, touching nothing.
"""

from __future__ import annotations

import pytest

from jtl import rundir
from jtl.errors import JtlError
from tests.conftest import compose_cfg
from tests.reliability.kit import ARGS, cli


def test_second_process_fails_at_once(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with rundir.file_lock(run / rundir.LOCK):
        code, _, err = cli([*ARGS, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and "in use by another jtl process" in err and err.count("\n") == 1
    assert not (run / rundir.METRICS).exists() and not (run / rundir.CONFIG).exists()


def test_lock_is_held_for_the_whole_run_and_released_after(tmp_path):
    from jtl.train import train_and_evaluate

    run = tmp_path / "run"
    seen = []

    def during(workdir, summary):  # still inside the run: a second claim must fail
        with pytest.raises(JtlError, match="in use"), rundir.claim(workdir, {}):
            pass
        seen.append(summary["status"])

    train_and_evaluate(compose_cfg(ARGS), run, on_complete=during)
    assert seen == ["completed"]
    with rundir.file_lock(run / rundir.LOCK, blocking=False):  # released
        pass
