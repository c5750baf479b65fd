"""DAP: the attribute table (config) is checked, seen classes must show every attribute on and
off, prediction picks the best-fitting code, and a short run learns seen attributes."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from jtl.config import compose
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.methods.dap import attribute_codes, check_seen, dap_predict
from jtl.train import train_and_evaluate

SEEN = [1, 2, 3, 4, 5, 6, 8, 9]  # unseen {0, 7}: the study's split


def seven_segment():
    return compose(["method=dap", f"method.seen={SEEN}"])["method"]


def test_the_study_split_sees_every_segment_on_and_off():
    method = build_method(seven_segment())
    assert method.seen == tuple(SEEN) and method.names == list("abcdefg")
    codes = method.codes[SEEN]
    assert codes.shape == (8, 7)
    assert (codes.max(0) == 1).all() and (codes.min(0) == 0).all()


def test_a_seen_set_missing_a_value_fails_with_the_attribute_named():
    # Segment c is off only for digit 2: the example {2, 7} would never show c off.
    cfg = seven_segment()
    with pytest.raises(JtlError, match=r"\['c'\]"):
        build_method({**cfg, "seen": [0, 1, 3, 4, 5, 6, 8, 9]})


def test_attribute_table_errors():
    with pytest.raises(JtlError, match="one row of M 0/1"):
        attribute_codes({"names": ["a", "b"], "codes": [[1, 2], [0, 1]]})
    with pytest.raises(JtlError, match="share one code"):
        attribute_codes({"names": ["a"], "codes": [[1], [1]]})
    with pytest.raises(JtlError, match="no row"):
        check_seen(np.eye(3), ["a", "b", "c"], [0, 5])
    with pytest.raises(JtlError, match="seven_segment"):
        build_method({"name": "dap", "attributes": "no_such_table"})


def test_a_table_of_ones_own(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("names: [round, tall]\ncodes: [[1, 0], [0, 1], [1, 1]]\n")
    method = build_method({"name": "dap", "attributes": str(path), "seen": [0, 1]})
    np.testing.assert_array_equal(method.codes, [[1, 0], [0, 1], [1, 1]])


def test_dap_predict_picks_the_code_its_attributes_fit():
    codes = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    logits = 4.0 * (2 * codes - 1)  # confident, each row matching one code
    np.testing.assert_array_equal(np.asarray(dap_predict(logits, codes)), [0, 1, 2])
    # A row with attribute 2 unsure still follows the two confident ones.
    unsure = jnp.array([[3.0, -3.0, 0.0], [-3.0, 3.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(dap_predict(unsure, codes)), [0, 1])


def test_a_short_run_learns_the_seen_attributes(fast_cfg, tmp_path):
    classes = "[1,2,3,4,5,6,8,9]"
    cfg = fast_cfg("method=dap", f"source.classes={classes}", f"target.classes={classes}",
                   f"method.seen={classes}",
                   "trainer.steps=150", "trainer.eval_every=150")
    with pytest.raises(JtlError, match=r"set method\.seen"):
        train_and_evaluate(fast_cfg("method=dap", f"source.classes={classes}",
                                    f"target.classes={classes}"), tmp_path / "unset")
    s = train_and_evaluate(cfg, tmp_path / "run")  # not tmp_path: it holds unset/
    assert s["status"] == "completed"
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    last = [r for r in rows if "train/seen_dap_acc" in r][-1]
    assert json.loads(last)["train/seen_dap_acc"] > 0.5  # chance among 8 classes: 0.125
