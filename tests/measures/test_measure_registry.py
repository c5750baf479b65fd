"""Every measure is registered, has a yaml whose options it accepts, and runs from a context."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from jtl.errors import JtlError
from jtl.measures import MEASURES, MeasureContext, run_measures
from jtl.measures.base import _check_options
from jtl.rundir import write_measures

CONF = Path(__file__).resolve().parents[2] / "conf" / "measure"
NAMES = {"pad", "mmd", "coral", "leep", "logme", "hscore", "nce", "tsne", "ntg"}


def test_all_measures_are_registered() -> None:
    assert set(MEASURES.names()) >= NAMES
    with pytest.raises(JtlError, match=r"conf/measure/nope\.yaml"):
        MEASURES.get("nope")


@pytest.mark.parametrize("name", sorted(NAMES))
def test_yaml_names_its_package_and_only_accepted_options(name: str) -> None:
    path = CONF / f"{name}.yaml"
    text = path.read_text()
    # The package puts each measure under its own key, so measure=[a,b] composes a dict.
    assert text.splitlines()[0] == f"# @package measure.{name}"
    cfg = yaml.safe_load(text)
    assert cfg["name"] == name
    _check_options(name, MEASURES.get(name), {k: v for k, v in cfg.items() if k != "name"})


def test_hydra_composes_a_list_of_measures() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF.parent), version_base="1.3"):
        cfg = compose("config", overrides=["+measure=[pad,leep]", "measure.pad.n_boot=10"])
    assert set(cfg.measure) == {"pad", "leep"}
    assert cfg.measure.pad.n_boot == 10


def context(tmp_path: Path | None = None) -> MeasureContext:
    rng = np.random.default_rng(0)
    yt = rng.integers(0, 3, 120)
    logits = 3.0 * np.eye(4)[yt] + rng.normal(size=(120, 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return MeasureContext(
        source_features=rng.normal(size=(100, 5)), source_labels=rng.integers(0, 3, 100),
        target_features=rng.normal(size=(120, 5)) + 0.5, target_labels=yt,
        target_source_probs=probs, run_dir=tmp_path, seed=0,
        transfer_err={0: 0.3, 1: 0.31}, baseline_err={0: 0.2, 1: 0.22})


def test_run_measures_merges_every_measure() -> None:
    cfg = {name: {"name": name} for name in ("leep", "nce", "hscore", "logme", "ntg")}
    cfg["pad"] = {"name": "pad", "n_boot": 50}
    out = run_measures(context(), cfg)
    assert {"leep", "nce", "hscore", "logme", "pad", "pad_ci_low", "confusion_loss",
            "ntg_mean", "ntg_verdict"} <= set(out)
    assert out["leep"] < 0 and out["nce"] <= 0 and out["hscore"] >= 0
    assert out["ntg_mean"] == pytest.approx(0.095)


def test_mmd_and_coral_entries_call_the_shared_losses() -> None:
    from jtl.measures.coral import coral_distance
    from jtl.measures.mmd import mk_mmd

    ctx = context()
    fs, ft = ctx.source_features.astype(np.float32), ctx.target_features.astype(np.float32)
    out = run_measures(ctx, {"mmd": {"name": "mmd", "kernel_num": 3}, "coral": {}})
    assert out["mmd"] == pytest.approx(float(mk_mmd(fs, ft, kernel_num=3)), rel=1e-5)
    assert out["coral"] == pytest.approx(float(coral_distance(fs, ft)), rel=1e-5)
    same = MeasureContext(source_features=ctx.source_features,
                          target_features=ctx.source_features)
    assert abs(run_measures(same, {"coral": {}})["coral"]) < 1e-9


def test_config_and_context_mistakes_are_user_errors() -> None:
    with pytest.raises(JtlError, match=r"no option\(s\) \['boot'\]"):
        run_measures(context(), {"pad": {"name": "pad", "boot": 3}})
    with pytest.raises(JtlError, match="needs target_source_probs"):
        run_measures(MeasureContext(target_labels=np.zeros(3)), {"leep": {}})


def test_write_measures_merges_and_keeps_json_valid(tmp_path: Path) -> None:
    write_measures(tmp_path, {"pad": 1.5})
    write_measures(tmp_path, {"ntg_ci_low": float("-inf"), "pad": 1.25})
    data = json.loads((tmp_path / "measures.json").read_text())
    assert data == {"pad": 1.25, "ntg_ci_low": "-inf"}
    assert [p.name for p in tmp_path.iterdir()] == ["measures.json"]


def test_atomic_writes_get_the_usual_file_mode(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        path = write_measures(tmp_path, {"pad": 1.0})
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_measures_run_at_the_end_of_training_from_config(fast_cfg, tmp_path):
    """`+measure=[...]` runs through a hook handed to the trainer (the trainer imports no
    measure), and each value records the checkpoint step it was taken at."""
    import json

    from jtl.measures.run import train_and_measure

    s = train_and_measure(fast_cfg("+measure=[pad,coral]", "measure.pad.n_boot=50"), tmp_path)
    values = json.loads((tmp_path / "measures.json").read_text())
    assert 0.0 <= values["pad"] <= 2.0 and values["coral"] >= 0.0
    assert values["_steps"]["pad"] == s["step"]
