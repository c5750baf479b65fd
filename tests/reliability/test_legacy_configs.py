"""Configs saved before a key existed reopen as they were trained (`rundir.MIGRATIONS`):
a key added later with a non-neutral default must not change what an old run dir means."""

from __future__ import annotations

from omegaconf import OmegaConf

from jtl import rundir
from jtl.train import train_and_evaluate
from jtl.train.runs import load_run

SHORT = ["trainer.steps=2", "trainer.eval_every=2", "trainer.checkpoint_every=2",
         "trainer.log_every=2"]


def saved_without(fast_cfg, run_dir, method: str, key: str, value: str) -> dict:
    """Train a tiny run with `key=value`, then delete the key from its saved config, as a run
    written before the key existed has it; returns the config as it was saved."""
    train_and_evaluate(fast_cfg(f"method={method}", f"method.{key}={value}", *SHORT), run_dir)
    path = run_dir / rundir.CONFIG
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    saved = {**cfg, "method": dict(cfg["method"])}
    del cfg["method"][key]
    del cfg[rundir.VERSION_KEY]  # written before versions: version 1
    path.write_text(OmegaConf.to_yaml(cfg))
    return saved


def test_an_mdd_run_saved_before_adv_hidden_reopens_with_its_linear_head(fast_cfg, tmp_path):
    saved = saved_without(fast_cfg, tmp_path / "old", "mdd", "adv_hidden", "0")
    assert rundir.fingerprint(rundir.load_config(tmp_path / "old")) == rundir.fingerprint(saved)
    run = load_run(tmp_path / "old")
    assert run.model.adv.kernel.shape == (run.model.backbone.feature_dim, 10)
    wide = {**saved, "method": {**saved["method"], "adv_hidden": 1024}}
    assert rundir.fingerprint(wide) != rundir.fingerprint(saved)


def test_a_dann_run_saved_before_disc_norm_reopens_without_batch_norm(fast_cfg, tmp_path):
    saved = saved_without(fast_cfg, tmp_path / "old", "dann", "disc_norm", "none")
    assert rundir.load_config(tmp_path / "old")["method"]["disc_norm"] == "none"
    assert rundir.fingerprint(rundir.load_config(tmp_path / "old")) == rundir.fingerprint(saved)
    assert load_run(tmp_path / "old").model.disc.norms is None


def test_a_saved_config_carries_its_version_and_a_newer_one_is_refused(fast_cfg, tmp_path):
    import pytest

    from jtl.errors import JtlError

    train_and_evaluate(fast_cfg(*SHORT), tmp_path / "run")
    path = tmp_path / "run" / rundir.CONFIG
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    assert cfg[rundir.VERSION_KEY] == rundir.CONFIG_VERSION
    assert rundir.VERSION_KEY not in rundir.load_config(tmp_path / "run")  # not in identity
    cfg[rundir.VERSION_KEY] = rundir.CONFIG_VERSION + 1
    path.write_text(OmegaConf.to_yaml(cfg))
    with pytest.raises(JtlError, match="a newer jtl wrote it"):
        rundir.load_config(tmp_path / "run")
