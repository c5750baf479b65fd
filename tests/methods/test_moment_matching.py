"""CORAL and MMD (DAN) methods: no penalty when the domains coincide, a growing one as they
drift apart, CORAL equal to the paper's formula on its layer, and a feature penalty trains the
backbone (not the head, unless asked)."""

from __future__ import annotations

import numpy as np
import pytest
from method_testkit import (
    CLASSES,
    FEATURES,
    assert_tree_close,
    evaluate,
    make_batch,
    np_ce,
    np_forward,
    tiny,
    tree_norm,
)

from jtl.errors import JtlError
from jtl.methods.coral import CORAL
from jtl.methods.mmd import MMD
from jtl.methods.source_only import SourceOnly

N = 64  # samples per domain: enough for the unbiased MMD estimate to be steady


def identical(batch: dict) -> dict:
    return {"source": batch["source"], "target": {"x": batch["source"]["x"]}}


def test_coral_zero_for_identical_and_grows_with_covariance_shift():
    method = CORAL(weight=2.0)
    graphdef, params = tiny(method)
    base = make_batch(n_s=N, n_t=N)
    loss, metrics, _ = evaluate(method, graphdef, params, identical(base))
    np.testing.assert_allclose(metrics["coral_loss"], 0.0, atol=1e-9)
    np.testing.assert_allclose(loss, metrics["cls_loss"], rtol=1e-6)
    vals = [float(evaluate(method, graphdef, params, make_batch(n_s=N, n_t=N, scale=s))[1]
                  ["coral_loss"]) for s in (1.0, 2.0, 4.0)]
    assert vals[0] < vals[1] < vals[2]
    # A pure mean shift moves the (linear) features' mean only: CORAL does not see it.
    shifted = evaluate(method, graphdef, params, make_batch(n_s=N, n_t=N, shift=3.0))[1]
    np.testing.assert_allclose(shifted["coral_loss"], vals[0], rtol=1e-4)


def test_mmd_near_zero_for_identical_and_grows_with_mean_shift():
    method = MMD(weight=1.0)
    graphdef, params = tiny(method)
    _, metrics, _ = evaluate(method, graphdef, params, identical(make_batch(n_s=N, n_t=N)))
    # unbiased estimate on the same batch twice: -2 (K - mean off-diagonal kernel) / N <= 0
    assert -2 * method.kernel_num / N <= float(metrics["mmd_features"]) <= 0.0
    vals = [float(evaluate(method, graphdef, params, make_batch(n_s=N, n_t=N, shift=s))[1]
                  ["mmd_features"]) for s in (0.0, 1.0, 3.0)]
    assert vals[0] < vals[1] < vals[2]
    assert abs(vals[0]) < 0.5 * vals[1]


def np_cov(a: np.ndarray) -> np.ndarray:
    """The paper's C = (X^T X - (1^T X)^T (1^T X) / n) / (n - 1)."""
    n = len(a)
    s = a.sum(0, keepdims=True)
    return (a.T @ a - s.T @ s / n) / (n - 1)


@pytest.mark.parametrize("layer", ["logits", "features"])
def test_coral_matches_the_paper_formula_on_its_layer(layer):
    method = CORAL(weight=0.7, layer=layer)
    graphdef, params = tiny(method)
    batch = make_batch(n_s=8, n_t=7, shift=0.5, scale=2.0)
    loss, metrics, g = evaluate(method, graphdef, params, batch)
    f_s, z_s = np_forward(params, batch["source"]["x"])
    f_t, z_t = np_forward(params, batch["target"]["x"])
    a, b = (z_s, z_t) if layer == "logits" else (f_s, f_t)
    d = a.shape[1]
    assert d == (CLASSES if layer == "logits" else FEATURES)
    coral = np.sum((np_cov(a) - np_cov(b)) ** 2) / (4 * d * d)
    np.testing.assert_allclose(metrics["coral_loss"], coral, rtol=1e-4)
    np.testing.assert_allclose(loss, np_ce(z_s, batch["source"]["y"]) + 0.7 * coral, rtol=1e-5)
    # on the logits the head is aligned too; on the features only the backbone
    _, _, g_src = evaluate(SourceOnly(), graphdef, params, batch)
    head_moved = tree_norm(np.subtract(g["head"]["kernel"], g_src["head"]["kernel"]))
    assert (head_moved > 1e-5) == (layer == "logits")


def test_coral_default_is_the_papers_last_layer():
    assert CORAL().layer == "logits"
    with pytest.raises(JtlError):
        CORAL(layer="fc7")


@pytest.mark.parametrize("method", [CORAL(weight=1.0, layer="features"), MMD(weight=1.0)],
                         ids=["coral", "mmd"])
def test_penalty_trains_backbone_not_head(method):
    graphdef, params = tiny(method)
    batch = make_batch(n_s=N, n_t=N, shift=1.0, scale=2.0)
    _, _, g = evaluate(method, graphdef, params, batch)
    _, _, g_src = evaluate(SourceOnly(), graphdef, params, batch)
    assert tree_norm(np.subtract(g["backbone"]["kernel"], g_src["backbone"]["kernel"])) > 1e-4
    assert_tree_close(g["head"], g_src["head"])


def test_mmd_on_logits_adds_a_head_term():
    method = MMD(weight=1.0, on_logits=True)
    graphdef, params = tiny(method)
    batch = make_batch(n_s=N, n_t=N, shift=1.0)
    _, metrics, g = evaluate(method, graphdef, params, batch)
    _, _, g_src = evaluate(SourceOnly(), graphdef, params, batch)
    np.testing.assert_allclose(metrics["mmd_loss"],
                               metrics["mmd_features"] + metrics["mmd_logits"], rtol=1e-6)
    assert tree_norm(np.subtract(g["head"]["kernel"], g_src["head"]["kernel"])) > 1e-5


def test_mmd_rejects_bad_kernels():
    with pytest.raises(JtlError):
        MMD(kernel_num=0)
