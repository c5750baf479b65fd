"""The pretraining cache: a grid of transfer runs pretrains once per seed, a second grid
trains nothing, and the transfer runs point at the cached run."""

from __future__ import annotations

import pytest

from jtl import rundir
from jtl.errors import JtlError
from jtl.train import train_and_evaluate
from jtl.train import trainer as trainer_module
from jtl.transfer.pretrain import pretrain_overrides
from tests.transfer.conftest import SMALL


def test_a_grid_pretrains_once_per_seed_and_a_second_grid_trains_nothing(
        small_cfg, tmp_path, monkeypatch):
    cache = tmp_path / "pretrain"
    grid = [(recipe, k, seed) for recipe, k in (("finetune", 1), ("feature_extractor", 3))
            for seed in (0, 1)]

    def run_grid():
        out = {}
        for recipe, k, seed in grid:
            cfg = small_cfg("method=target_only", f"transfer={recipe}", f"seed={seed}",
                            f"target.per_class={k}", "trainer.batch_over_split=resample",
                            f"paths.pretrain_dir={cache}")
            cfg.pretrain = list(SMALL)  # overrides naming the source run
            out[recipe, k, seed] = train_and_evaluate(
                cfg, tmp_path / "grid" / f"{recipe}_k{k}_s{seed}")
        return out

    calls = []
    real = trainer_module._train
    monkeypatch.setattr(trainer_module, "_train",
                        lambda cfg, *a: calls.append(cfg) or real(cfg, *a))
    run_grid()
    pretrained = [c for c in calls if c["transfer"]["name"] == "none"]
    assert len(calls) == len(grid) + 2 and len(pretrained) == 2  # one per seed, not per run
    assert sorted(c["seed"] for c in pretrained) == [0, 1]
    runs = rundir.find_runs(cache)
    assert len(runs) == 2 and all(rundir.is_completed(r) for r in runs)
    for seed in (0, 1):  # each seed fine-tunes its own pretrained run
        init = rundir.load_config(tmp_path / "grid" / f"finetune_k1_s{seed}")["init_from"]
        assert rundir.load_config(init)["seed"] == seed and init.startswith(str(cache))
    calls.clear()
    run_grid()
    assert calls == []  # everything completed: nothing trained, pretraining included

    # Seeds trained at once (trainer.seeds) start each from its own seed's source model. The
    # head is loaded from the source model and held (freeze): not flagged as a random head's.
    cfg = small_cfg("transfer=finetune", "target.per_class=1", "trainer.seeds=[0,1]",
                    "trainer.batch_over_split=resample", f"paths.pretrain_dir={cache}",
                    "freeze=head/.*", "dont_load=null")
    cfg.pretrain = list(SMALL)
    out = train_and_evaluate(cfg, tmp_path / "vmapped")
    for seed in (0, 1):
        lane = rundir.load_config(tmp_path / "vmapped" / f"seed{seed}")
        alone = rundir.load_config(tmp_path / "grid" / f"finetune_k1_s{seed}")
        assert lane["init_from"] == alone["init_from"]
        assert "head" not in out["runs"][seed]
    assert len(rundir.find_runs(cache)) == 2  # and found them in the cache


def test_pretrain_and_init_from_together_are_a_user_error(small_cfg, tmp_path):
    cfg = small_cfg("method=target_only", f"init_from={tmp_path}", "pretrain=digits_m2u")
    with pytest.raises(JtlError, match="not both"):
        train_and_evaluate(cfg, tmp_path / "run")


def test_an_unknown_pretraining_experiment_is_a_user_error(small_cfg, tmp_path):
    cfg = small_cfg("method=target_only", "transfer=finetune", "pretrain=no_such_experiment",
                    f"paths.pretrain_dir={tmp_path}")
    with pytest.raises(JtlError, match="pretrain: cannot compose"):
        train_and_evaluate(cfg, tmp_path / "run")


def test_pretrain_names_an_experiment_and_takes_the_runs_seed():
    assert pretrain_overrides("digits_u2m", 3) == ["experiment=digits_u2m", "seed=3"]
    assert pretrain_overrides(["experiment=x", "seed=7"], 3) == ["experiment=x", "seed=7"]
    assert pretrain_overrides("model=mlp", 0, {"data_dir": "/d", "tfds_dir": None}) == [
        "model=mlp", "seed=0", "++paths.data_dir='/d'"]
