"""bn_adapt: BatchNorm statistics of target batches (mean of the batches' own statistics),
mixed with the source's by the prior N; no other parameter changes."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from jtl.domains import Split
from jtl.domains.pp import Pipeline
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.methods.bn_adapt import mixed_statistics
from jtl.models import build_network
from tests.methods.source_free_kit import adapted, changed, params_at, rows, source_run


def first_layer(prior: float):
    """(source params, adapted params, the first BN layer's input over the split) on 30
    examples in batches of 10."""
    method = build_method({"name": "bn_adapt", "batch_size": 10, "prior": prior})
    net = build_network({"name": "mlp", "input_shape": [6], "hidden": [5], "norm": "batch"},
                        3, method, 0)
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    x = (np.random.default_rng(0).normal(size=(30, 6)) * 3 + 2).astype(np.float32)
    split = Split({"features": x, "label": np.zeros(30, np.int32)}, Pipeline("features"))
    out = mixed_statistics(graphdef, params, split, method.batch_size, method.prior)
    lin = params["backbone"]["blocks"][0]["linear"]
    h = x.astype(np.float64) @ np.asarray(lin["kernel"]) + np.asarray(lin["bias"])
    return params, out, h


def test_statistics_are_the_mean_of_the_batches_own():
    """prior 0: the mean of the three batches' means and of their (biased) variances, which
    is the within-batch variance, not the split's (AdaBN's)."""
    _, out, h = first_layer(0.0)
    bn = out["backbone"]["blocks"][0]["norm"]
    batches = h.reshape(3, 10, -1)
    np.testing.assert_allclose(bn["mean"], batches.mean(1).mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn["var"], batches.var(1).mean(0), rtol=1e-4, atol=1e-4)
    assert not np.allclose(bn["var"], h.var(0), rtol=1e-3)


def test_prior_mixes_in_the_source_statistics():
    """N = 10 with n = 10: half source statistics, half target batches'."""
    params, out, h = first_layer(10.0)
    src = params["backbone"]["blocks"][0]["norm"]
    bn = out["backbone"]["blocks"][0]["norm"]
    batches = h.reshape(3, 10, -1)
    np.testing.assert_allclose(bn["mean"], 0.5 * np.asarray(src["mean"])
                               + 0.5 * batches.mean(1).mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn["var"], 0.5 * np.asarray(src["var"])
                               + 0.5 * batches.var(1).mean(0), rtol=1e-4, atol=1e-4)


def test_a_statistics_only_source_free_run(tmp_path_factory):
    """From a source run: only BN mean/var change, no gradient step is logged."""
    root = tmp_path_factory.mktemp("bn_adapt")
    src = source_run(root)
    s = adapted(src, root / "bn", "method=bn_adapt")
    assert s["status"] == "completed" and s["source"] is None
    moved = changed(params_at(src)["params"], params_at(root / "bn")["params"])
    for path, differs in moved.items():
        assert differs == path.endswith(("/mean", "/var")), path
    assert not any(k.startswith("train/") for r in rows(root / "bn") for k in r)


def test_bad_values_are_refused():
    with pytest.raises(JtlError, match="prior"):
        build_method({"name": "bn_adapt", "prior": -1.0})
