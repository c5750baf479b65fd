"""A domain without labels (an npz with only `x`, issue 13): self-supervised methods train on
it, a method that needs its labels fails with one line, and no accuracy is made up for it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from jtl import rundir
from jtl.errors import JtlError
from jtl.train import train_and_evaluate

STEPS = ["trainer.steps=10", "trainer.eval_every=10", "trainer.checkpoint_every=10",
         "trainer.log_every=10"]


def npz(path, labels: bool, test: bool = False):
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    arrays = {"x": x[:1200]}
    if labels:
        arrays["y"] = d.target[:1200]
    if test:
        arrays.update(x_test=x[1200:], y_test=d.target[1200:])
    np.savez(path, **arrays)
    return str(path)


def test_simclr_trains_on_a_source_without_labels(fast_cfg, tmp_path):
    src = npz(tmp_path / "src.npz", labels=False)
    s = train_and_evaluate(fast_cfg(*STEPS, "method=simclr", "domain@source=npz",
                                    f"source.path={src}", "source.num_classes=10"),
                           tmp_path / "run")
    assert s["status"] == "completed"
    assert "target/test/accuracy" in s
    assert not any(k.startswith("source/") for k in s)  # no accuracy on placeholder labels
    assert all(not k.startswith("source/") for r in rundir.read_metrics(tmp_path / "run")
               for k in r)


def test_a_method_that_needs_the_labels_is_one_clear_error(fast_cfg, tmp_path):
    src = npz(tmp_path / "src.npz", labels=False)
    with pytest.raises(JtlError, match=r"source 'npz' has no labels .* trains on them"):
        train_and_evaluate(fast_cfg(*STEPS, "method=dann", "domain@source=npz",
                                    f"source.path={src}", "source.num_classes=10"),
                           tmp_path / "run")


def test_unlabeled_target_train_split_beside_labeled_test(fast_cfg, tmp_path):
    tgt = npz(tmp_path / "tgt.npz", labels=False, test=True)
    s = train_and_evaluate(fast_cfg(*STEPS, "method=dann", "domain@target=npz",
                                    f"target.path={tgt}", "target.num_classes=10"),
                           tmp_path / "run")
    assert s["target/test/accuracy"] > 0.2 and "target/val/accuracy" not in s
    with pytest.raises(JtlError, match="target 'npz' has no labels at all"):
        train_and_evaluate(fast_cfg(*STEPS, "method=dann", "domain@target=npz",
                                    f"target.path={npz(tmp_path / 'bare.npz', labels=False)}"),
                           tmp_path / "run2")
