"""A run dir resumes only a run of its own config (issue 8, first bullet).

On the old main, re-running a completed dir with `seed=1`, or `method=target_only` on a killed
source_only dir, silently resumed the old state and reported it under the new config, and
Hydra rewrote `.hydra/config.yaml`.
"""

from __future__ import annotations

import shutil

from jtl import rundir
from tests.reliability.kit import ARGS, cli, summary


def _copy(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    return run


def test_completed_dir_with_another_seed_is_refused(reference, tmp_path, monkeypatch, capsys):
    run = _copy(reference, tmp_path)
    before, config = summary(run), (run / rundir.CONFIG).read_text()
    code, _, err = cli([*ARGS, "seed=1", f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("jtl: error: ")
    assert "differing keys: seed" in err and "overwrite=true" in err and "hydra.run.dir" in err
    assert summary(run) == before and (run / rundir.CONFIG).read_text() == config


def test_killed_run_with_another_method_is_refused(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    monkeypatch.setenv("JTL_FAULT", "enospc@30")  # dies after the step-20 checkpoint
    assert cli([*ARGS, f"hydra.run.dir={run}"], monkeypatch, capsys)[0] == 2
    assert rundir.status(run) == "failed" and (run / "checkpoints" / "20").is_dir()
    code, _, err = cli([*ARGS, "method=target_only", f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 2 and "differing keys: method.name" in err
    assert rundir.load_config(run)["method"]["name"] == "source_only"


def test_overwrite_moves_the_old_dir_aside(reference, tmp_path, monkeypatch, capsys):
    run = _copy(reference, tmp_path)
    before = summary(run)
    code, out, _ = cli([*ARGS, "seed=1", "overwrite=true", f"hydra.run.dir={run}"],
                       monkeypatch, capsys)
    assert code == 0 and "moved the old run dir" in out
    (old,) = tmp_path.glob("run.old-*")
    assert summary(old) == before and rundir.load_config(old)["seed"] == 3
    assert summary(run)["seed"] == 1 and summary(run)["status"] == "completed"


def test_presentation_keys_do_not_change_identity(reference, tmp_path, monkeypatch, capsys):
    """A completed run re-run with other display/log settings is the same run: not retrained."""
    run = _copy(reference, tmp_path)
    before = summary(run)
    code, out, _ = cli([*ARGS, "trainer.log_every=5", "trainer.progress=true",
                        f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 0 and summary(run) == before
    assert "test accuracy" in out


def test_identity_ignores_only_presentation_keys():
    cfg = {"seed": 0, "trainer": {"steps": 10, "progress": True, "eval_every": 5},
           "hydra": {"x": 1}, "paths": {"data_dir": "/a"}}
    other = {**cfg, "trainer": {**cfg["trainer"], "progress": False}, "paths": {"data_dir": "/b"}}
    assert rundir.fingerprint(cfg) == rundir.fingerprint(other)
    changed = {**cfg, "trainer": {**cfg["trainer"], "eval_every": 2}}
    assert rundir.differing_keys(cfg, changed) == ["trainer.eval_every"]


def test_new_keys_at_neutral_values_keep_older_runs_identity():
    """Features added later (pretrain, class subsets, vmapped seeds, transfer recipes, conv
    implementation) must not orphan run dirs made before their keys existed: a config without
    those keys has the identity of today's config with them at their defaults."""
    from jtl.config import compose

    today = compose(["experiment=digits_m2u", "method=dann"])
    before = {k: v for k, v in today.items() if k not in ("pretrain", "transfer")}
    before["source"] = {k: v for k, v in today["source"].items() if k != "classes"}
    before["trainer"] = {k: v for k, v in today["trainer"].items() if k != "seeds"}
    before["model"] = {k: v for k, v in today["model"].items() if k != "conv_impl"}
    assert rundir.fingerprint(before) == rundir.fingerprint(today)
    # ... but a key set to a value that does something still counts.
    for used in ({"transfer": {"name": "finetune"}}, {"pretrain": "ft_pretrain_usps"},
                 {"source": {**today["source"], "classes": [0, 1]}}):
        assert rundir.fingerprint({**today, **used}) != rundir.fingerprint(today)
