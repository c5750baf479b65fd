"""Grids (issue 21): one launching process per sweep dir, Hydra never writes a run's config
before jtl's identity check, a cell killed by a signal is named by the launching process, and
the pretraining cache quotes any data dir.

On the old main a second `-m` sweep into a busy sweep dir deleted the first's
`failed_jobs.jsonl`; `hydra.output_subdir=.hydra` returned seed 0's result as seed 1's; a
SIGKILLed cell under `cpu_pool` or `submitit_local` was a traceback that named no cell (joblib
killed the other cell in flight too); a data dir with an apostrophe broke `pretrain=`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from jtl import rundir
from jtl.cli import train as cli_train
from jtl.errors import JtlError
from tests.reliability.kit import ARGS, cli, summary


def sweep_cfg(sweep: Path):
    """The part of a sweep's config that `SweepFailures` reads (a basic launcher)."""
    return OmegaConf.create({"hydra": {
        "sweep": {"dir": str(sweep)}, "output_subdir": None, "overrides": {"hydra": []},
        "launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}}})


# --- one launching process per sweep dir -------------------------------------------------------


def test_second_sweep_into_a_busy_sweep_dir_fails_at_once(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    monkeypatch.setattr(cli_train, "FAILED_JOBS", [])
    first = cli_train.SweepFailures()
    first.on_multirun_start(sweep_cfg(sweep))  # the first sweep's launching process
    try:
        rundir.append_sweep_failure(sweep, sweep / "seed0", "the first sweep's failed cell")
        before = sorted(p.name for p in sweep.iterdir())
        code, _, err = cli(["-m", *ARGS, "seed=0,1", f"hydra.sweep.dir={sweep}",
                            "hydra.sweep.subdir=seed${seed}"], monkeypatch, capsys)
        assert code == 2 and err.count("\n") == 1 and err.startswith("jtl: error: ")
        assert f"sweep dir {sweep} is in use by another jtl sweep" in err
        assert "another hydra.sweep.dir (held by pid" in err
        assert sorted(p.name for p in sweep.iterdir()) == before  # no cell dir made
        assert rundir.read_sweep_failures(sweep) == [(sweep / "seed0",
                                                      "the first sweep's failed cell")]
    finally:
        first.on_multirun_end(sweep_cfg(sweep))
    named = cli_train.FAILED_JOBS
    assert named == [(sweep / "seed0", "the first sweep's failed cell")]
    with rundir.file_lock(sweep / cli_train.SWEEP_LOCK, blocking=False):  # released
        pass


def test_the_sweep_lock_is_held_while_its_cells_run(tmp_path, monkeypatch, capsys):
    import jtl.train

    sweep, claims = tmp_path / "sweep", []

    def cell(cfg, workdir, **_):  # stands in for training: a second sweep must be refused
        try:
            with rundir.file_lock(sweep / cli_train.SWEEP_LOCK, blocking=False, busy="busy"):
                claims.append("free")
        except JtlError as e:
            claims.append(str(e).split(" (")[0])
        return {"status": "completed"}

    monkeypatch.setattr(jtl.train, "train_and_evaluate", cell)
    code, _, err = cli(["-m", *ARGS, "seed=0,1", f"hydra.sweep.dir={sweep}"], monkeypatch, capsys)
    assert code == 0, err
    assert claims == ["busy", "busy"]
    with rundir.file_lock(sweep / cli_train.SWEEP_LOCK, blocking=False):  # released after
        pass


def test_a_damaged_failures_line_still_counts_as_a_failure(tmp_path):
    rundir.append_sweep_failure(tmp_path, tmp_path / "0", "a reason")
    with open(tmp_path / rundir.SWEEP_FAILURES, "a") as f:
        f.write('{"run_dir": "/x", "rea\n')  # a writer killed mid-line
    rows = rundir.read_sweep_failures(tmp_path)
    assert rows[0] == (tmp_path / "0", "a reason") and len(rows) == 2
    assert rows[1][0] == tmp_path and "unreadable line" in rows[1][1]


# --- hydra.output_subdir ------------------------------------------------------------------------


def test_output_subdir_is_refused_before_hydra_writes_a_config(reference, tmp_path, monkeypatch,
                                                               capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before, config = summary(run), (run / rundir.CONFIG).read_text()
    code, out, err = cli([*ARGS, "seed=1", "hydra.output_subdir=.hydra", f"hydra.run.dir={run}"],
                         monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("jtl: error: ")
    assert "hydra.output_subdir=.hydra" in err and "Leave hydra.output_subdir null" in err
    assert "test accuracy" not in out
    assert summary(run) == before and (run / rundir.CONFIG).read_text() == config


def test_output_subdir_is_refused_for_a_sweep_too(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    code, _, err = cli(["-m", *ARGS, "seed=0,1", "hydra.output_subdir=meta",
                        f"hydra.sweep.dir={sweep}"], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "hydra.output_subdir=meta" in err
    assert not sweep.exists()


# --- pretrain= quotes the paths it passes on ----------------------------------------------------


@pytest.mark.parametrize("name", ["it's data", 'a "quoted" dir\\', "x,y=[z] ${not.a.key}"])
def test_pretrain_passes_any_data_dir_through(tmp_path, name):
    from jtl.transfer import pretrain

    data = tmp_path / name
    data.mkdir()
    paths = {"data_dir": str(data), "pretrain_dir": str(tmp_path / "pre")}
    seen = []

    def train(pcfg, run):  # leaves a completed run of the config it was given, untrained
        seen.append(pcfg)
        rundir.save_config(run, pcfg)
        rundir.record_completed(run, {"status": "completed"})

    cfg = {"pretrain": ["domain@source=sklearn_digits", "model=mlp"], "seed": 0, "paths": paths}
    resolved = pretrain.resolve(cfg, train)
    (pcfg,) = seen
    assert pcfg["paths"]["data_dir"] == str(data)
    assert pcfg["paths"]["pretrain_dir"] == str(tmp_path / "pre")
    assert resolved["init_from"].startswith(str(tmp_path / "pre"))
