"""A run whose head is never trained (a self-supervised method) says so in summary.json."""

from __future__ import annotations

import numpy as np
import pytest

from jtl.methods import build_method
from jtl.train import train_and_evaluate
from jtl.train.trainer import untrained_head
from jtl.transfer import Recipe


@pytest.mark.parametrize("method,cfg,freeze,recipe,untrained", [
    ("simclr", {}, None, {}, True),                       # trains (backbone|proj)/ only
    ("autoencoder", {}, None, {}, True),
    ("source_only", {}, None, {}, False),                 # trains everything
    ("source_only", {}, "head/.*", {}, True),             # head frozen, nothing loaded
    ("source_only", {"init_from": "r"}, ".*", {}, False),  # evaluates a loaded head
    ("source_only", {"init_from": "r", "dont_load": "head/.*"}, ".*", {}, True),
    ("source_only", {"init_from": "r", "dont_load": "head/.*"}, ".*",
     {"name": "prototype", "head": "prototype"}, False),  # the class means are its head
    ("simclr", {"init_from": "r"}, None, {}, False),      # the loaded run's head
])
def test_untrained_head(method, cfg, freeze, recipe, untrained):
    m = build_method({"name": method})
    params = {"backbone": {"kernel": np.zeros(2)}, "head": {"bias": np.zeros(2),
                                                            "kernel": np.zeros(2)}}
    assert untrained_head(cfg, params, m, freeze, Recipe.from_cfg(recipe)) is untrained


def test_a_self_supervised_run_marks_its_accuracy_as_a_random_heads(fast_cfg, tmp_path):
    short = ["trainer.steps=2", "trainer.eval_every=2", "trainer.checkpoint_every=2",
             "trainer.log_every=2", "trainer.batch_size=16"]
    s = train_and_evaluate(fast_cfg("method=simclr", *short), tmp_path / "ssl")
    assert s["head"].startswith("untrained")
    assert "head" not in train_and_evaluate(fast_cfg("method=source_only", *short),
                                            tmp_path / "sup")
