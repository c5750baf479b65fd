"""T3A: templates from the head's weights and low-entropy target features; only the head
changes in a run, and its logits are features . templates."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.methods.source_free import embed
from jtl.methods.t3a import templates
from jtl.rundir import load_config
from jtl.train.build import build_all
from tests.methods.source_free_kit import adapted, changed, params_at, source_run


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def test_templates_on_a_hand_made_example():
    """Head w0 = [1, 0], w1 = [0, 1], no bias. Features z1 = [2, 0.1] and z2 = [0.5, 0.4]
    (both predicted 0; entropies 0.39 and 0.69 nats, w0's own logits [1, 0]: 0.58) and
    z3 = [0, 3] (class 1). With M = 2, class 0 keeps z1 and w0 (z2 is the least sure), class
    1 keeps w1 and z3: template_0 = unit(unit(w0) + unit(z1)), template_1 = [0, 1]."""
    kernel = np.eye(2)  # (D, C): column c is w_c
    feats = np.array([[2.0, 0.1], [0.5, 0.4], [0.0, 3.0]])
    got = templates(kernel, np.zeros(2), feats, feats @ kernel, filter_k=2)
    np.testing.assert_allclose(got[:, 0], unit(unit([1, 0]) + unit([2, 0.1])), atol=1e-12)
    np.testing.assert_allclose(got[:, 1], [0, 1], atol=1e-12)
    every = templates(kernel, np.zeros(2), feats, feats @ kernel, filter_k=None)
    np.testing.assert_allclose(every[:, 0], unit(unit([1, 0]) + unit([2, 0.1])
                                                 + unit([0.5, 0.4])), atol=1e-12)
    one = templates(kernel, np.zeros(2), feats, feats @ kernel, filter_k=1)
    np.testing.assert_allclose(one[:, 0], unit([2, 0.1]), atol=1e-12)  # the surest support


def test_the_warm_up_supports_are_labelled_by_the_head_with_its_bias():
    """A bias large enough makes the head call w1 class 0: then class 1 has no support and
    its template is 0 (T3A's normalize of a zero column), class 0 gets both weights."""
    kernel = np.eye(2)
    got = templates(kernel, np.array([5.0, 0.0]), np.zeros((0, 2)), np.zeros((0, 2)), None)
    np.testing.assert_allclose(got[:, 0], unit([1, 1]), atol=1e-12)
    np.testing.assert_allclose(got[:, 1], 0, atol=1e-12)


def test_a_run_replaces_only_the_head(tmp_path):
    """After t3a only head/kernel and head/bias differ from the source model; the bias is 0
    and the kernel is `templates` of the source model's features over target train."""
    src = source_run(tmp_path)
    s = adapted(src, tmp_path / "t3a", "method=t3a", "method.filter_k=20")
    assert s["status"] == "completed" and s["source"] is None
    before, after = params_at(src)["params"], params_at(tmp_path / "t3a")["params"]
    moved = changed(before, after)
    assert {p for p, v in moved.items() if v} == {"head/kernel", "head/bias"}
    built = build_all(load_config(tmp_path / "t3a"))
    graphdef, _ = nnx.split(built.net)
    feats, logits = embed(graphdef, before, built.roles.target.train)
    head = before["head"]
    want = templates(np.asarray(head["kernel"]), np.asarray(head["bias"]), feats, logits, 20)
    np.testing.assert_allclose(after["head"]["kernel"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(after["head"]["bias"], 0)


def test_filter_k_is_checked():
    with pytest.raises(JtlError, match="filter_k"):
        build_method({"name": "t3a", "filter_k": 0})
    assert build_method({"name": "t3a", "filter_k": None}).filter_k is None
