"""A sweep with failed jobs exits non-zero and names them (issue 8, ninth bullet). On the old
main a `-m` sweep whose every job failed exited 0, breaking `set -e` scripts."""

from __future__ import annotations

from tests.reliability.kit import ARGS, cli


def test_failed_jobs_make_the_sweep_exit_1(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    code, out, err = cli(["-m", *ARGS, "trainer.steps=10", "trainer.batch_size=16,5000",
                          f"hydra.sweep.dir={sweep}"], monkeypatch, capsys)
    assert code == 1
    assert "1 job(s) of the sweep failed" in err and str(sweep / "1") in err
    assert "larger than the source train split" in err
    assert "test accuracy" in out  # the good job ran and reported


def test_all_good_sweep_exits_0(tmp_path, monkeypatch, capsys):
    code, _, err = cli(["-m", *ARGS, "trainer.steps=10", "seed=0,1",
                        f"hydra.sweep.dir={tmp_path}"], monkeypatch, capsys)
    assert code == 0, err
