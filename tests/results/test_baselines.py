"""Who is compared with whom: a run is paired by the target labels it read (Wang et al.),
never a run without target labels with a target_only trained on all of them."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.measures import ntg
from jtl.methods import METHODS
from jtl.results.baselines import (
    BaselineCache,
    MissingBaselineError,
    NtgOptions,
    compare,
    load_transfer_run,
    negative_transfer,
    reads_target_labels,
)
from tests.results.ntg_sweep import CHANCE_ERR, SEEDS, accuracy, make_sweep


def err(kind: str, seed: int) -> float:
    return 1.0 - accuracy(kind, seed)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ntg_sweep")
    return root, make_sweep(root)


def _ntg(root: Path, kind: str, launch: bool = False) -> dict:
    runs = sorted((root / kind).iterdir())
    return negative_transfer(runs, NtgOptions(launch=launch), root / "baselines",
                             search=[root]).values


def test_only_target_only_reads_target_labels() -> None:
    labeled = {name for name in METHODS.names()
               if reads_target_labels({"method": {"name": name}})}
    # Inductive methods train on the target's labels; adaptation and unsupervised ones do not.
    assert labeled == {"target_only", "bss", "multitask"}
    assert {"dann", "cdan", "mcc", "source_only", "simclr", "dap"} <= (
        set(METHODS.names()) - labeled)


def test_unlabeled_run_gets_the_adaptation_gain_not_a_full_label_ntg(sweep) -> None:
    """A target_only on every target label exists beside the dann runs: it is not used."""
    root, runs = sweep
    values = _ntg(root, "dann")
    gains = [err("source_only", s) - err("dann", s) for s in SEEDS]
    zero = [err("dann", s) - CHANCE_ERR for s in SEEDS]
    for s in SEEDS:
        v = values[runs[("dann", s)]]
        assert v["ntg_mean"] is None and v["ntg_verdict"] is None and v["ntg_gap"] is None
        assert v["ntg_baseline"] == ntg.NO_LABELS
        assert v["ntg_source_only_dir"] == str(runs[("source_only", s)])
        assert v["ntg_adaptation_gain"] == pytest.approx(gains[s], abs=1e-12)
        assert v["ntg_zero_label_gap"] == pytest.approx(zero[s], abs=1e-12)
    assert v["ntg_adaptation_gain_mean"] == pytest.approx(np.mean(gains), abs=1e-12)
    assert v["ntg_adaptation_gain_n"] == 3
    assert v["ntg_adaptation_gain_ci_low"] > 0  # dann beats source_only at every seed
    assert v["ntg_adaptation_gain_verdict"] == ntg.HELPS
    assert v["ntg_zero_label_err"] == pytest.approx(CHANCE_ERR)
    assert v["ntg_zero_label_mean"] == pytest.approx(np.mean(zero), abs=1e-12)
    assert v["ntg_zero_label_verdict"] == ntg.POSITIVE


def test_labeled_run_is_compared_with_target_only_on_the_same_labels(sweep) -> None:
    root, runs = sweep
    values = _ntg(root, "finetune")
    gaps = [err("finetune", s) - err("target_only_5", s) for s in SEEDS]
    for s in SEEDS:
        v = values[runs[("finetune", s)]]
        assert v["ntg_baseline_dir"] == str(runs[("target_only_5", s)])  # per_class=5
        assert v["ntg_gap"] == pytest.approx(gaps[s], abs=1e-12)
        assert v["ntg_adaptation_gain_mean"] is None and v["ntg_zero_label_mean"] is None
    assert v["ntg_baseline"] == ntg.SAME_LABELS
    assert v["ntg_mean"] == pytest.approx(np.mean(gaps), abs=1e-12)
    assert v["ntg_verdict"] == ntg.POSITIVE


def test_source_only_is_its_own_reference(sweep) -> None:
    root, runs = sweep
    v = _ntg(root, "source_only")[runs[("source_only", 0)]]
    assert v["ntg_adaptation_gain_verdict"] == ntg.REFERENCE
    assert v["ntg_adaptation_gain_mean"] is None and v["ntg_adaptation_gain"] == 0.0
    assert v["ntg_zero_label_mean"] == pytest.approx(
        np.mean([err("source_only", s) - CHANCE_ERR for s in SEEDS]), abs=1e-12)


def test_two_runs_of_one_seed_are_an_error_naming_both(sweep, tmp_path: Path) -> None:
    root, runs = sweep
    again = tmp_path / "dann_again"
    shutil.copytree(runs[("dann", 1)], again)
    with pytest.raises(JtlError, match=rf"{runs[('dann', 1)]} and {again} are both seed 1"):
        negative_transfer([*sorted((root / "dann").iterdir()), again], NtgOptions(launch=False),
                          root / "baselines", search=[root])
    # Two references of one seed: also named, never a silent first-found.
    ref = tmp_path / "refs" / "target_only_5_again"
    shutil.copytree(runs[("target_only_5", 2)], ref)
    cache = BaselineCache(root / "baselines", search=[root, tmp_path / "refs"], launch=False)
    members = [load_transfer_run(runs[("finetune", s)]) for s in SEEDS]
    with pytest.raises(JtlError, match=r"are both the target_only reference of seed 2"):
        compare(members, cache)


def test_missing_reference_is_named_with_the_command_to_train_it(tmp_path: Path) -> None:
    make_sweep(tmp_path, kinds=("dann", "target_only"), seeds=(0, 1))
    with pytest.raises(MissingBaselineError,
                       match=r"no source_only reference for seed\(s\) \[0, 1\].*jtl.train"):
        _ntg(tmp_path, "dann")


def test_group_mixing_labeled_and_unlabeled_runs_is_refused(sweep) -> None:
    root, runs = sweep
    cache = BaselineCache(root / "baselines", search=[root], launch=False)
    members = [load_transfer_run(runs[("dann", 0)]), load_transfer_run(runs[("finetune", 1)])]
    with pytest.raises(JtlError, match=r"read target labels .* do not"):
        compare(members, cache)


def test_ntg_options_are_the_measure_options() -> None:
    params = [p for p in inspect.signature(ntg.ntg_measure).parameters if p != "ctx"]
    assert list(NtgOptions.__dataclass_fields__) == params
    assert NtgOptions.from_cfg({"name": "ntg", "level": 0.9}).level == 0.9
    with pytest.raises(JtlError, match=r"no option\(s\) \['levl'\]"):
        NtgOptions.from_cfg({"levl": 0.9})
