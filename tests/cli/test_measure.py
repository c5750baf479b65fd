"""`jtl.measure` on tiny trained runs: feature measures into measures.json (transferability
measures on the target train labels), NTG with cached baselines (a second call trains
nothing; a run without target labels gets a source_only one), and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from jtl.cli.measure import main
from jtl.errors import JtlError
from jtl.measures import ntg
from jtl.measures.run import FeatureOptions, measure_dirs, measure_loaded, measure_run
from jtl.results.baselines import (
    NtgOptions,
    baseline_key,
    baseline_overrides,
    key_hash,
    negative_transfer,
    read_config,
    reference_key,
)
from tests.conftest import FAST, ROOT, compose_cfg

SEEDS = (1, 2)
PERMUTED = "target.shifts=[{name:permute_labels,seed:1}]"


def train(cfg: DictConfig, run_dir: Path) -> Path:
    """What `python -m jtl.train` leaves behind: .hydra/config.yaml, checkpoints, summary."""
    from jtl.train import train_and_evaluate

    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml", resolve=True)
    train_and_evaluate(cfg, run_dir)
    return run_dir


class InProcess:
    """A baseline launcher that trains in this process (no interpreter start) and counts."""

    def __init__(self) -> None:
        self.launched: list[Path] = []

    def __call__(self, overrides: list[str], run_dir: Path) -> None:
        self.launched.append(run_dir)
        train(compose_cfg(overrides), run_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A source_only run, a sweep of two seeds fine-tuning it (head included) on a
    label-permuted target with 5 examples per class, and a dann run (no target labels)."""
    root = tmp_path_factory.mktemp("measure")
    src = train(compose_cfg([*FAST, "seed=0"]), root / "source")
    for s in SEEDS:
        cfg = compose_cfg([*FAST, "method=target_only", f"init_from={src}", "target.per_class=5",
                           "trainer.batch_over_split=resample",
                           PERMUTED, f"seed={s}"])
        train(cfg, root / "sweep" / str(s))
    dann = train(compose_cfg([*FAST, "method=dann", "seed=1"]), root / "da" / "dann")
    return {"root": root, "source": src, "sweep": root / "sweep", "dann": dann}


def test_measure_run_writes_feature_measures(runs: dict[str, Path]) -> None:
    src = runs["source"]
    (src / "measures.json").write_text(json.dumps({"earlier": 1.0}))
    cfg = {"pad": {"name": "pad", "n_boot": 20}, "leep": {}, "logme": {},
           "tsne": {"max_points": 60}}
    values = measure_run(src, cfg, FeatureOptions(max_samples=200))
    saved = json.loads((src / "measures.json").read_text())
    assert saved["earlier"] == 1.0  # merged, not replaced
    for k in ("pad", "pad_ci_low", "domain_acc", "leep", "logme", "tsne_kl"):
        assert saved[k] == pytest.approx(values[k])
    # sklearn_digits -> sklearn_digits: one test set, so nothing tells the domains apart.
    assert values["pad"] == pytest.approx(0.0, abs=0.5)
    assert values["leep"] < 0
    assert (src / "tsne.png").stat().st_size > 1000

    deep = measure_run(src, {"mmd": {}}, FeatureOptions(layer="logits", max_samples=100))
    assert set(deep) == {"logits/mmd"}
    assert "logits/mmd" in json.loads((src / "measures.json").read_text())


def test_user_mistakes_are_clear_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(JtlError, match="does not exist"):
        measure_run(tmp_path / "nope", {"pad": {}})
    with pytest.raises(JtlError, match="not a jtl run dir"):
        measure_run(tmp_path, {"pad": {}})
    with pytest.raises(JtlError, match=r"unknown measure 'nope'"):
        measure_run(runs["source"], {"nope": {}})
    with pytest.raises(JtlError, match=r"unknown layer 'conv9'.*backbone/blocks/0"):
        measure_run(runs["source"], {"pad": {}}, FeatureOptions(layer="conv9"))
    with pytest.raises(JtlError, match="nothing to measure"):
        measure_run(runs["source"], {})
    with pytest.raises(JtlError, match="target_only baseline, not a transfer run"):
        _baseline_only(tmp_path)


def _baseline_only(tmp_path: Path) -> None:
    run = tmp_path / "base"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_cfg([*FAST, "method=target_only"]), run / ".hydra" / "config.yaml")
    (run / "summary.json").write_text(json.dumps({"status": "completed"}))
    negative_transfer([run], NtgOptions(launch=False), tmp_path / "cache")


@pytest.mark.parametrize("method", ["target_only", "source_only"])
@pytest.mark.parametrize("extra", [[], [PERMUTED, "target.per_class=5", "optim=sgd",
                                        "paths.data_dir='/tmp/it\\'s here'"]])
def test_baseline_overrides_compose_the_same_target(extra: list[str], method: str) -> None:
    """The subprocess command line rebuilds exactly the config its reference must share."""
    cfg = OmegaConf.to_container(compose_cfg([*FAST, "method=dann", "seed=7",
                                              "init_from=/somewhere", *extra]), resolve=True)
    back = OmegaConf.to_container(compose_cfg(baseline_overrides(cfg, 3, method)),
                                  resolve=True)
    assert reference_key(back, method) == reference_key(cfg, method)
    assert (back["method"]["name"], back["seed"], back["init_from"]) == (method, 3, None)
    assert back["paths"] == cfg["paths"] and back["source"] == cfg["source"]


def test_ntg_trains_each_baseline_once_then_hits_the_cache(runs: dict[str, Path]) -> None:
    sweep = sorted(runs["sweep"].iterdir())
    cache = runs["root"] / "baselines"
    assert not cache.exists()
    cfg = {"ntg": {"name": "ntg", "baselines_dir": str(cache)}}
    first = InProcess()
    values = measure_dirs(sweep, cfg, launcher=first, root=runs["sweep"])
    h = key_hash(baseline_key(read_config(sweep[0])))
    base = cache / "target_only" / h
    assert first.launched == [base / f"seed{s}" for s in SEEDS]
    assert json.loads((base / "key.json").read_text())["target"]["per_class"] == 5

    again = InProcess()
    assert measure_dirs(sweep, cfg, launcher=again, root=runs["sweep"]) == values
    assert again.launched == []

    gaps = []
    for run, s in zip(sweep, SEEDS, strict=True):
        v = json.loads((run / "measures.json").read_text())
        t_acc = json.loads((run / "summary.json").read_text())["target/test/accuracy"]
        b_acc = json.loads((base / f"seed{s}" / "summary.json").read_text())[
            "target/test/accuracy"]
        assert v["ntg_gap"] == pytest.approx((1 - t_acc) - (1 - b_acc))
        assert v["ntg_baseline_dir"] == str(base / f"seed{s}")
        gaps.append(v["ntg_gap"])
        assert v["ntg_n"] == 2
        assert v["ntg_verdict"] in ("negative transfer", "positive", "inconclusive")
    assert v["ntg_mean"] == pytest.approx(np.mean(gaps))
    assert v["ntg_ci_low"] < v["ntg_mean"] < v["ntg_ci_high"]


def test_cli_prints_and_writes_ntg_without_training(runs: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cache = runs["root"] / "baselines"  # shared with the test above: trained at most once
    measure_dirs(sorted(runs["sweep"].iterdir()), {"ntg": {"baselines_dir": str(cache)}},
                 launcher=InProcess(), root=runs["sweep"])
    args = [f"run_dir={runs['sweep']}", "measure=[ntg]", f"measure.ntg.baselines_dir={cache}",
            "measure.ntg.launch=false"]
    assert main(args) == 0
    assert capsys.readouterr().out.count("ntg_verdict") == len(SEEDS)

    # A cache without the baselines, and launching off: the error gives the command to run.
    assert main([*args[:2], f"measure.ntg.baselines_dir={tmp_path / 'empty'}",
                 "measure.ntg.launch=false"]) == 2
    assert "python -m jtl.train" in capsys.readouterr().err
    assert main([f"run_dir={runs['sweep']}", "measure=[pad,nope]"]) == 2
    assert "Known measures" in capsys.readouterr().err
    assert main([f"run_dir={tmp_path / 'missing'}", "measure=[pad]"]) == 2
    assert "does not exist" in capsys.readouterr().err

    # The module entry point, as a user runs it (and with a sweep of feature measures).
    out = subprocess.run([sys.executable, "-m", "jtl.measure", f"run_dir={runs['sweep']}",
                          "measure=[coral]", "max_samples=50"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("coral:") == len(SEEDS)


def test_a_run_without_target_labels_gets_a_trained_source_only(runs: dict[str, Path]) -> None:
    """dann reads no target label: its reference is source_only (trained once into the
    cache), its NTG is against chance, and no target_only is trained for it."""
    dann, cache = runs["dann"], runs["root"] / "da_baselines"
    cfg = {"ntg": {"baselines_dir": str(cache)}}
    launcher = InProcess()
    v = measure_dirs([dann], cfg, launcher=launcher, root=runs["root"] / "da")[dann]
    ref = cache / "source_only" / key_hash(reference_key(read_config(dann), "source_only"))
    assert launcher.launched == [ref / "seed1"]
    assert read_config(ref / "seed1")["method"]["name"] == "source_only"
    err = 1 - json.loads((dann / "summary.json").read_text())["target/test/accuracy"]
    ref_err = 1 - json.loads((ref / "seed1" / "summary.json").read_text())[
        "target/test/accuracy"]
    assert v["ntg_mean"] is None and v["ntg_baseline"] == ntg.NO_LABELS
    assert v["ntg_adaptation_gain"] == pytest.approx(ref_err - err)
    assert v["ntg_zero_label_gap"] == pytest.approx(err - 0.9)
    saved = json.loads((dann / "measures.json").read_text())
    assert saved["ntg_mean"] is None and saved["ntg_adaptation_gain_n"] == 1


@pytest.mark.filterwarnings("ignore:Sharding info not provided")
def test_transferability_measures_read_target_train_labels(runs: dict[str, Path]) -> None:
    """Scrambling the target *test* labels changes no transferability estimate; scrambling
    the *train* labels changes them all. PAD on split=test reads the test inputs."""
    import dataclasses

    from jtl.domains import Split
    from jtl.train.runs import load_run

    run = load_run(runs["source"])
    cfg = {"leep": {}, "logme": {}, "hscore": {}, "nce": {}, "pad": {"n_boot": 10}}
    opts = FeatureOptions(max_samples=150)
    rng = np.random.default_rng(0)

    def scrambled(split: str, what: str):
        old = getattr(run.target, split)
        new = (old.with_fields(label=rng.permutation(old.y)) if what == "y" else
               Split.of(1.0 - old.x, old.y))  # model input as given (no pipeline)
        return dataclasses.replace(run, target=dataclasses.replace(run.target, **{split: new}))

    base = measure_loaded(run, cfg, opts)
    test_y = measure_loaded(scrambled("test", "y"), cfg, opts)
    train_y = measure_loaded(scrambled("train", "y"), cfg, opts)
    test_x = measure_loaded(scrambled("test", "x"), {"pad": {"n_boot": 10}}, opts)
    for k in ("leep", "logme", "hscore", "nce"):
        assert test_y[k] == base[k], k
        assert train_y[k] != base[k], k
    assert test_y["pad"] == train_y["pad"] == base["pad"]
    assert test_x["domain_acc"] != base["domain_acc"]
