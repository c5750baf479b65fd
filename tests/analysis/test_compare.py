"""Linear CKA's defining properties and the per-layer parameter change on real runs."""

from __future__ import annotations

import numpy as np
import pytest

from jtl.analysis import cka_by_layer, linear_cka, load_run, param_change
from jtl.analysis.examples import FREEZE
from jtl.errors import JtlError
from tests.analysis.tiny import Study


def cka_by_definition(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with centring matrix H (Kornblith eq. 1-4)."""
    n = len(x)
    h = np.eye(n) - 1.0 / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.trace(k @ l_) / np.sqrt(np.trace(k @ k) * np.trace(l_ @ l_)))


@pytest.mark.parametrize("n,d", [(60, 12), (15, 40)])  # feature form and Gram form
def test_linear_cka_is_one_on_itself_and_invariant_to_rotation_and_scale(n, d):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.7 * x + 5.0) == pytest.approx(1.0, abs=1e-12)
    y = rng.normal(size=(n, 7))
    assert linear_cka(x, y) == pytest.approx(cka_by_definition(x, y), rel=1e-10)
    assert linear_cka(x, y) < 0.9
    stretched = x * np.r_[10.0, np.ones(d - 1)]  # not isotropic: CKA moves
    assert linear_cka(x, stretched) < 0.99
    assert linear_cka(x, x @ q * 2.0) == pytest.approx(linear_cka(x @ q, x), abs=1e-12)


def test_linear_cka_refuses_mismatched_or_constant_inputs():
    with pytest.raises(JtlError, match="same examples"):
        linear_cka(np.ones((4, 2)), np.ones((5, 2)))
    with pytest.raises(JtlError, match="constant"):
        linear_cka(np.ones((4, 2)), np.arange(8.0).reshape(4, 2))


def test_param_change_by_hand():
    before = {"a": {"kernel": np.array([3.0, 0.0]), "bias": np.array([4.0])},
              "b": {"kernel": np.zeros(2)}}
    after = {"a": {"kernel": np.array([3.0, 5.0]), "bias": np.array([4.0])},
             "b": {"kernel": np.ones(2)}}
    df = param_change(before, after).set_index("layer")
    assert df.loc["a", "rel_change"] == pytest.approx(1.0)  # ||(0,5,0)|| / ||(3,0,4)||
    assert df.loc["a", "num_params"] == 3
    assert df.loc["b", "rel_change"] == np.inf and df.loc["b", "change"] == pytest.approx(
        np.sqrt(2))
    with pytest.raises(JtlError, match="shape"):
        param_change(before, {"a": {"kernel": np.zeros(3)}})


def test_change_is_zero_on_itself_and_only_trained_layers_of_a_freeze_run_move(tiny: Study):
    assert FREEZE == "backbone/blocks/0/.*"
    run = load_run(tiny.freeze)
    same = param_change(run, run)
    assert (same["rel_change"] == 0).all() and len(same) == 3
    for before in (run.initial_params(), run.params_at(20)):  # pretrained; a checkpoint
        df = param_change(before, run).set_index("layer")["rel_change"]
        assert df["backbone/blocks/0/linear"] == 0.0
        assert df["backbone/blocks/1/linear"] > 1e-3 and df["head"] > 1e-3
    source = load_run(tiny.source)  # every parameter was loaded: block 0 is the source's
    assert param_change(source, run).set_index("layer").loc["backbone/blocks/0/linear",
                                                             "rel_change"] == 0.0
    cka = cka_by_layer(source, run).set_index("layer")["cka"]
    assert cka["backbone/blocks/0"] == pytest.approx(1.0, abs=1e-9)
    assert cka["logits"] < 1.0 - 1e-4
    assert cka_by_layer(run, run)["cka"].to_numpy() == pytest.approx(1.0, abs=1e-9)
