"""load_run rebuilds a run's network from its dir: same predictions as at the end of training."""

from __future__ import annotations

import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.train import train_and_evaluate
from jtl.train.runs import features, layer_names, load_run


def test_load_run_reproduces_the_summary(fast_cfg, tmp_path):
    s = train_and_evaluate(fast_cfg(), tmp_path)  # from Python: the trainer saves the config
    run = load_run(tmp_path)
    assert run.step == s["step"]
    probs = features(run.model, run.target.test.x, "probs")
    acc = float(np.mean(probs.argmax(1) == run.target.test.y))
    assert acc == pytest.approx(s["target/test/accuracy"], abs=1e-6)
    assert features(run.model, run.target.test.x[:3], "features").shape == (3, 64)
    assert "backbone/blocks/0" in layer_names(run.model)
    with pytest.raises(JtlError, match="unknown layer"):
        features(run.model, run.target.test.x[:3], "nope")


def test_load_run_on_a_plain_dir_is_a_clear_error(tmp_path):
    with pytest.raises(JtlError, match="not a jtl run dir"):
        load_run(tmp_path)
