"""Transductive training: target labels never reach a loss; every method trains finitely."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

from jtl.methods import METHODS
from jtl.train import train_and_evaluate
from tests.train.test_trainer import assert_trees, final_params

# Every method of the transductive setting: source labels and target inputs, no target label.
TRANSDUCTIVE = [m for m in METHODS.names()
                if METHODS.get(m).uses == {"source/x", "source/y", "target/x"}]


def _target_npz(path, shuffle_labels: bool):
    d = load_digits()
    x, y = 1.0 - d.images / 16.0, d.target.copy()  # inverted digits: a real shift
    if shuffle_labels:
        np.random.default_rng(0).shuffle(y)
    np.savez(path, x=x.astype(np.float32), y=y)
    return ["domain@target=npz", f"target.path={path}"]


@pytest.mark.parametrize("method", TRANSDUCTIVE)
def test_trains_on_the_shared_trainer_and_never_reads_target_labels(fast_cfg, tmp_path, method):
    """Each method trains finitely, and shuffling the target labels leaves its trained
    parameters bit-identical (two runs per method: the smoke test and the label check)."""
    runs, summary = {}, None
    for shuffled in (False, True):
        target = _target_npz(tmp_path / f"t{shuffled}.npz", shuffled)
        run_dir = tmp_path / f"run{shuffled}"
        s = train_and_evaluate(fast_cfg(f"method={method}", *target, "trainer.steps=60"), run_dir)
        summary = summary or s
        runs[shuffled] = final_params(run_dir)
    assert summary["status"] == "completed"
    assert all(math.isfinite(v) for k, v in summary.items() if k.endswith("accuracy"))
    assert summary["source/test/accuracy"] > 0.5
    assert_trees(runs[False], runs[True])


def test_the_label_check_can_fail(fast_cfg, tmp_path):
    """target_only reads target labels: shuffling them must change its parameters."""
    runs = {}
    for shuffled in (False, True):
        target = _target_npz(tmp_path / f"t{shuffled}.npz", shuffled)
        train_and_evaluate(fast_cfg("method=target_only", *target), tmp_path / f"r{shuffled}")
        runs[shuffled] = final_params(tmp_path / f"r{shuffled}")
    with pytest.raises(AssertionError):
        assert_trees(runs[False], runs[True])
