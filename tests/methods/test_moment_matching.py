"""CORAL and MMD (DAN) methods: no penalty when the domains coincide, a growing one as they
drift apart, and the penalty trains the backbone (not the head, unless asked)."""

from __future__ import annotations

import numpy as np
import pytest
from method_testkit import assert_tree_close, evaluate, make_batch, tiny, tree_norm

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


@pytest.mark.parametrize("method", [CORAL(weight=1.0), MMD(weight=1.0)], ids=["coral", "mmd"])
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
