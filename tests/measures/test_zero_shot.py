"""zero_shot: DAP accuracy of a `dap` run on classes it never trained on."""

from __future__ import annotations

import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.measures.base import MeasureContext, run_measures
from jtl.measures.zero_shot import zero_shot_accuracy
from jtl.train import train_and_evaluate
from tests.conftest import FAST, compose_cfg

SEEN = "[1,2,3,4,5,6,8,9]"


def test_accuracy_counts_nearest_codes_and_balances_classes():
    codes = np.array([[1.0, 0.0], [0.0, 1.0]])
    logits = np.array([[5.0, -5.0], [-5.0, 5.0], [5.0, -5.0]])
    acc, balanced = zero_shot_accuracy(logits, np.array([0, 1, 1]), codes)
    assert acc == pytest.approx(2 / 3) and balanced == pytest.approx(0.75)  # (1 + 1/2) / 2
    # Always answering the majority class: accuracy 3/4, balanced accuracy at chance.
    always0 = np.tile([5.0, -5.0], (4, 1))
    assert zero_shot_accuracy(always0, np.array([0, 0, 0, 1]), codes) == (0.75, 0.5)


@pytest.fixture(scope="module")
def dap_run(tmp_path_factory):
    cfg = compose_cfg([*FAST, "method=dap", f"source.classes={SEEN}",
                       f"target.classes={SEEN}", f"method.seen={SEEN}", "trainer.steps=150",
                       "trainer.eval_every=150"])
    run_dir = tmp_path_factory.mktemp("dap")
    train_and_evaluate(cfg, run_dir)
    return run_dir


def test_measure_on_a_dap_run(dap_run):
    v = run_measures(MeasureContext(run_dir=dap_run), {"zero_shot": {}})
    assert v["zero_shot_unseen_chance"] == 0.5 and v["zero_shot_seen_chance"] == 1 / 8
    assert v["zero_shot_domain"] == "sklearn_digits"
    assert v["zero_shot_unseen_n"] > 0 and v["zero_shot_seen_n"] > 0
    assert v["zero_shot_seen_accuracy"] > 0.5  # trained on these classes
    assert 0.5 <= v["zero_shot_unseen_majority"] <= 1.0
    assert 0.0 <= v["zero_shot_unseen_accuracy"] <= 1.0
    with pytest.raises(JtlError, match="outside the seen"):
        run_measures(MeasureContext(run_dir=dap_run), {"zero_shot": {"unseen": [0, 1]}})


def test_measure_refuses_another_method(fast_cfg, tmp_path):
    train_and_evaluate(fast_cfg("trainer.steps=2", "trainer.eval_every=2",
                                "trainer.checkpoint_every=2"), tmp_path)
    with pytest.raises(JtlError, match="method=dap"):
        run_measures(MeasureContext(run_dir=tmp_path), {"zero_shot": {}})
