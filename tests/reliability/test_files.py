"""Run dirs and caches safe against symlinks, foreign files and odd paths (issue 21).

On the old main a symlinked `.jtl.lock` or `train.log` was written through (the lock helper
truncated the link's target), a dir holding a user's own `metrics.jsonl`/`summary.json` was
silently replaced, a damaged `.hydra/config.yaml` or a run dir that is a file gave
tracebacks, run dirs reached through a symlink were skipped by `jtl.report`/`jtl.measure`, and
Ctrl-C in those two printed a traceback. Nothing here trains: every case is refused (or read)
before a step, so the tests stay fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from jtl import rundir
from jtl.errors import JtlError
from tests.conftest import compose_cfg
from tests.reliability.kit import ARGS, child, cli

PRECIOUS = "a file of the user's, never to be written by jtl\n"
# A run that would train only 2 steps (should a refusal fail to happen, the test stays short).
SHORT = [*ARGS, "trainer.steps=2", "trainer.eval_every=2", "trainer.checkpoint_every=2",
         "trainer.log_every=2"]


def _target(tmp_path: Path) -> Path:
    target = tmp_path / "elsewhere" / "precious.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(PRECIOUS)
    return target


def _one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("jtl: error: ")


def _fake_run(d: Path, seed: int = 0, method: str = "source_only",
              status: str = "completed") -> Path:
    """A run dir as jtl leaves it, without training: a config and a summary."""
    (d / ".hydra").mkdir(parents=True)
    cfg = {"seed": seed, "method": {"name": method}, "source": {"name": "mnist"},
           "target": {"name": "usps"}}
    (d / rundir.CONFIG).write_text(yaml.safe_dump(cfg))
    (d / rundir.SUMMARY).write_text(json.dumps({
        "status": status, "step": 2, "seed": seed, "method": method,
        "target/test/accuracy": 0.5 + 0.01 * seed}))
    return d


# --- 1. a symlinked lock ----------------------------------------------------------------------


def test_symlinked_lock_is_refused_and_its_target_untouched(tmp_path, monkeypatch, capsys):
    target = _target(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.LOCK).symlink_to(target)
    with pytest.raises(JtlError, match="symbolic link"), rundir.file_lock(run / rundir.LOCK):
        pass
    code, _, err = cli([*SHORT, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and _one_line(err) and rundir.LOCK in err and "symbolic link" in err
    assert target.read_text() == PRECIOUS and (run / rundir.LOCK).is_symlink()


def test_lock_on_a_fifo_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "x.lock")
    with pytest.raises(JtlError, match="not a regular file"), \
            rundir.file_lock(tmp_path / "x.lock"):
        pass


# --- 2. symlinked append-mode files -----------------------------------------------------------


def test_symlinked_train_log_is_refused(tmp_path):
    """Hydra's job log (`<run dir>/train.log`, conf/hydra/job_logging/jtl.yaml)."""
    target = _target(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").symlink_to(target)
    r = child([*SHORT, f"hydra.run.dir={run}"])
    assert r.returncode == 2 and _one_line(r.stderr), r.stderr[-2000:]
    assert "train.log" in r.stderr and "symbolic link" in r.stderr
    assert target.read_text() == PRECIOUS and not (run / rundir.METRICS).exists()


def test_metric_rows_never_follow_a_link(tmp_path):
    from jtl.train.writer import MetricWriter

    target = _target(tmp_path)
    writer = MetricWriter(tmp_path, 0, tensorboard=False)
    writer.write(1, {"loss": 1.0})
    (tmp_path / rundir.METRICS).unlink()
    (tmp_path / rundir.METRICS).symlink_to(target)  # swapped in under a running writer
    with pytest.raises(JtlError, match="symbolic link"):
        writer.write(2, {"loss": 0.5})
    assert target.read_text() == PRECIOUS


def test_a_run_dir_with_a_symlinked_metrics_file_is_refused(tmp_path):
    target = _target(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.METRICS).symlink_to(target)
    with pytest.raises(JtlError, match="symbolic link"), \
            rundir.claim(run, compose_cfg(SHORT)):
        pass
    assert target.read_text() == PRECIOUS


def test_atomic_writes_replace_a_link_not_its_target(tmp_path):
    """summary.json, failed.json, measures.json, the config: os.replace swaps the link."""
    target = _target(tmp_path)
    (tmp_path / rundir.SUMMARY).symlink_to(target)
    rundir.write_summary(tmp_path, {"status": "completed"})
    assert not (tmp_path / rundir.SUMMARY).is_symlink() and target.read_text() == PRECIOUS


# --- 3. a dir holding files jtl did not write -------------------------------------------------


def _foreign_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.METRICS).write_text('{"step": 1, "mine": 1}\n')
    (run / rundir.SUMMARY).write_text('{"mine": true}\n')
    return run


def test_a_dir_of_foreign_files_is_refused(tmp_path, monkeypatch, capsys):
    run = _foreign_dir(tmp_path)
    code, _, err = cli([*SHORT, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and _one_line(err) and "did not write" in err
    assert rundir.METRICS in err and rundir.SUMMARY in err and "overwrite=true" in err
    assert (run / rundir.SUMMARY).read_text() == '{"mine": true}\n'
    assert (run / rundir.METRICS).read_text() == '{"step": 1, "mine": 1}\n'
    assert not (run / rundir.CONFIG).exists()


def test_overwrite_moves_a_dir_of_foreign_files_aside(tmp_path, capsys):
    run = _foreign_dir(tmp_path)
    with rundir.claim(run, compose_cfg(SHORT), overwrite=True):
        assert not (run / rundir.SUMMARY).exists() and (run / rundir.CONFIG).exists()
    (old,) = tmp_path.glob("run.old-*")
    assert (old / rundir.SUMMARY).read_text() == '{"mine": true}\n'


def test_an_empty_dir_or_one_with_only_a_log_is_claimed(tmp_path):
    for name, files in (("empty", ()), ("logged", ("train.log",))):
        run = tmp_path / name
        run.mkdir()
        for f in files:
            (run / f).write_text("[INFO] started\n")
        with rundir.claim(run, compose_cfg(SHORT)):
            assert (run / rundir.CONFIG).exists()


# --- 4. a damaged .hydra/config.yaml ----------------------------------------------------------

DAMAGES = {
    "not yaml": b"seed: 3\nmethod: {name: dann\n",
    "not a mapping": b"- 1\n- 2\n",
    "binary": b"\x00\xff\xfe garbage",
    "empty": b"",
    "truncated": None,  # the first 300 bytes of a real config
}


def _damage(run: Path, how: str) -> None:
    data = DAMAGES[how]
    if data is None:
        from omegaconf import OmegaConf

        text = OmegaConf.to_yaml(compose_cfg(SHORT))
        data = text.encode()[:300]
    (run / rundir.CONFIG).write_bytes(data)


@pytest.mark.parametrize("how", list(DAMAGES))
def test_rerun_of_a_dir_with_a_damaged_config_is_refused(how, tmp_path, monkeypatch, capsys):
    run = _fake_run(tmp_path / "run")
    _damage(run, how)
    before = (run / rundir.CONFIG).read_bytes()
    code, _, err = cli([*SHORT, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and _one_line(err) and "damaged" in err and "overwrite=true" in err
    assert (run / rundir.CONFIG).read_bytes() == before
    with rundir.claim(run, compose_cfg(SHORT), overwrite=True):
        pass
    (old,) = tmp_path.glob("run.old-*")
    assert (old / rundir.CONFIG).read_bytes() == before


def test_report_skips_a_dir_with_a_damaged_config(tmp_path, capsys):
    from jtl.cli.report import main

    for seed in (0, 1):
        _fake_run(tmp_path / f"{seed}", seed=seed)
    bad = _fake_run(tmp_path / "bad", seed=2)
    _damage(bad, "not yaml")
    assert main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "2 completed runs" in out
    (line,) = [ln for ln in err.splitlines() if str(bad) in ln]
    assert line.startswith("warning: ") and "damaged" in line


@pytest.mark.parametrize("how", ["not yaml", "not a mapping", "truncated"])
def test_measure_of_a_dir_with_a_damaged_config_is_one_line(how, tmp_path, capsys):
    from jtl.cli.measure import main

    run = _fake_run(tmp_path / "run")
    (run / rundir.CHECKPOINTS / "2").mkdir(parents=True)
    _damage(run, how)
    assert main([f"run_dir={run}", "measure=[pad]"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "damaged" in err and str(run) in err


# --- 5. a run dir that cannot be a dir --------------------------------------------------------


def _bad_dir(tmp_path: Path, how: str) -> Path:
    if how == "a file":
        (tmp_path / "f").write_text("x")
        return tmp_path / "f"
    if how == "under a file":
        (tmp_path / "f").write_text("x")
        return tmp_path / "f" / "run"
    if how == "a symlink loop":
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        return tmp_path / "loop"
    return tmp_path / ("x" * 300)  # a name over 255 bytes


BAD_DIRS = ["a file", "under a file", "a symlink loop", "a long name"]


@pytest.mark.parametrize("how", BAD_DIRS)
def test_a_run_dir_that_cannot_be_a_dir_is_one_line(how, tmp_path, monkeypatch, capsys):
    run = _bad_dir(tmp_path, how)
    code, _, err = cli([*SHORT, f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and _one_line(err), err
    with pytest.raises(JtlError, match=r"hydra\.run\.dir"), \
            rundir.claim(run, compose_cfg(SHORT)):
        pass


@pytest.mark.parametrize("how", BAD_DIRS)
def test_measure_of_a_run_dir_that_cannot_be_a_dir_is_one_line(how, tmp_path, capsys):
    from jtl.cli.measure import main

    run = _bad_dir(tmp_path, how)
    assert main([f"run_dir={run}", "measure=[pad]"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err), err


@pytest.mark.parametrize("how", BAD_DIRS)
def test_report_of_a_dir_that_cannot_be_a_dir_is_one_line(how, tmp_path, capsys):
    from jtl.cli.report import main

    assert main([str(_bad_dir(tmp_path, how))]) == 2
    err = capsys.readouterr().err
    assert _one_line(err), err


# --- 6. run dirs reached through a symlink ----------------------------------------------------


def _linked_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    _fake_run(sweep / "0", seed=0)
    _fake_run(tmp_path / "elsewhere" / "run", seed=1)
    (sweep / "1").symlink_to(tmp_path / "elsewhere" / "run")
    (sweep / "cycle").symlink_to(sweep)  # a cycle must not loop
    (sweep / "0" / "up").symlink_to(tmp_path)
    return sweep


def test_runs_reached_through_a_symlink_are_found_once(tmp_path):
    from jtl.measures.run import runs_under

    sweep = _linked_sweep(tmp_path)
    runs = rundir.find_runs(sweep)
    assert sorted(r.resolve().name for r in runs) == ["0", "run"]
    assert sorted(p.resolve().name for p in runs_under(sweep)) == ["0", "run"]


def test_report_reads_runs_reached_through_a_symlink(tmp_path, capsys):
    from jtl.results.report import build_report

    rep = build_report(_linked_sweep(tmp_path))
    assert rep.n_runs == 2


# --- 7. Ctrl-C in jtl.measure / jtl.report ----------------------------------------------------


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_in_report(tmp_path, monkeypatch, capsys):
    from jtl.cli import report

    monkeypatch.setattr(report, "build_report", _interrupt)
    try:
        code = report.main([str(tmp_path)])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped jtl.report")
    assert code == 130 and capsys.readouterr().err.strip() == "jtl: interrupted"


def test_ctrl_c_in_measure(tmp_path, monkeypatch, capsys):
    from jtl.cli import measure
    from jtl.measures import run

    monkeypatch.setattr(run, "measure_path", _interrupt)
    try:
        code = measure.main([f"run_dir={tmp_path}", "measure=[pad]"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped jtl.measure")
    assert code == 130 and capsys.readouterr().err.strip() == "jtl: interrupted"
