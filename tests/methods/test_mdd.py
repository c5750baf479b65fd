"""MDD: the disparity against numpy written from the paper's formula, and the adversarial
game: f' (`adv/`) descends the transfer term at full strength, the backbone gets exactly
-coeff * weight times its gradient, the head learns from the source CE only. f' reads the
features standardised over the batch, so the backbone cannot win the game by scaling them
(on the digits it did, and every run diverged)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from method_testkit import (
    assert_tree_close,
    ce,
    evaluate,
    hand_grads,
    make_batch,
    np_ce,
    np_forward,
    np_softmax,
    tiny,
    tree_axpy,
    tree_norm,
)

from jtl.errors import JtlError
from jtl.methods.adversarial import dann_lambda
from jtl.methods.mdd import MDD, log1m_softmax

METHOD = MDD(weight=0.7, margin=4.0, grl_max=0.1)
PROGRESS = 0.15


def np_discrepancy(y_s, adv_s, y_t, adv_t, margin: float) -> float:
    """Zhang et al. 2019: D = gamma E_s log p'[h(x_s)] + E_t log(1 - p'[h(x_t)])."""
    p_s, p_t = np_softmax(adv_s), np_softmax(adv_t)
    h_s, h_t = np.argmax(y_s, -1), np.argmax(y_t, -1)
    src = np.mean([np.log(p_s[i, h_s[i]]) for i in range(len(h_s))])
    tgt = np.mean([np.log(1 - p_t[i, h_t[i]]) for i in range(len(h_t))])
    return float(margin * src + tgt)


def np_adv(params, f_s: np.ndarray, f_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f' on [f_s; f_t] standardised per feature over that joint batch (BatchNorm, eps 1e-5)."""
    a = jax.tree.map(lambda v: np.asarray(v, np.float64), params["adv"])
    f = np.concatenate([f_s, f_t])
    z = (f - f.mean(0)) / np.sqrt(f.var(0) + 1e-5)
    if "layers" in a:  # TLlib's Linear-ReLU-Linear (adv_hidden)
        hid, out_layer = a["layers"][0], a["layers"][2]
        z = np.maximum(z @ hid["kernel"] + hid["bias"], 0.0)
        a = out_layer
    out = z @ np.asarray(a["kernel"]) + np.asarray(a["bias"])
    return out[:len(f_s)], out[len(f_s):]


def hand_standardize(f: jax.Array) -> jax.Array:
    return (f - jnp.mean(f, 0)) / jnp.sqrt(jnp.var(f, 0) + 1e-5)


def rescaled(params, s: float):
    """Parameters whose backbone features are s times larger while the head's logits (hence
    yhat) are unchanged: what the backbone could do to inflate the disparity."""
    def scale(path, v):
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        if name.startswith("backbone/"):
            return s * v
        return v / s if name.startswith("head/kernel") else v

    return jax.tree_util.tree_map_with_path(scale, params)


def test_log1m_softmax_exact_and_finite():
    z = jnp.asarray([[1.0, 2.0, -1.0], [60.0, 0.0, 0.0]])
    got = log1m_softmax(z, jnp.asarray([1, 0]))
    p = np_softmax(np.asarray(z[:1], np.float64))
    np.testing.assert_allclose(got[0], np.log(1 - p[0, 1]), rtol=1e-5)
    np.testing.assert_allclose(got[1], np.log(2.0) - 60.0, rtol=1e-5)  # naive log(1-p) = -inf


def test_loss_matches_the_paper_formula():
    graphdef, params = tiny(METHOD)
    batch = make_batch(shift=1.0)
    loss, metrics, _ = evaluate(METHOD, graphdef, params, batch, PROGRESS)
    f_s, y_s = np_forward(params, batch["source"]["x"])
    f_t, y_t = np_forward(params, batch["target"]["x"])
    adv_s, adv_t = np_adv(params, f_s, f_t)
    d = np_discrepancy(y_s, adv_s, y_t, adv_t, 4.0)
    np.testing.assert_allclose(metrics["mdd_loss"], -d, rtol=1e-4)
    np.testing.assert_allclose(loss, np_ce(y_s, batch["source"]["y"]) - 0.7 * d, rtol=1e-5)
    lam = 0.1 * float(dann_lambda(jnp.float32(PROGRESS)))
    np.testing.assert_allclose(metrics["lambda"], lam, rtol=1e-6)


@pytest.mark.parametrize("adv_hidden", [1024, 0])  # TLlib's wide f' (default), a linear f'
def test_adversary_learns_and_backbone_gets_the_reversed_gradient(adv_hidden):
    method = dataclasses.replace(METHOD, adv_hidden=adv_hidden)
    atol = 5e-5 if adv_hidden else 1e-6  # float32 sums over the 1024 hidden units
    graphdef, params = tiny(method)
    batch = make_batch(shift=1.0)
    xs, ys, xt = batch["source"]["x"], batch["source"]["y"], batch["target"]["x"]
    _, metrics, g = evaluate(method, graphdef, params, batch, PROGRESS)
    coeff = float(metrics["lambda"])
    assert 0.01 < coeff < 0.1  # a point where a missing or wrong coefficient would show

    def cls(m):
        return ce(m.head(m.backbone(xs)), ys)

    def transfer(m):  # -D as if everything minimised it (no reversal); argmax is constant
        f_s, f_t = m.backbone(xs), m.backbone(xt)
        h_s = jnp.argmax(m.head(f_s), -1)
        h_t = jnp.argmax(m.head(f_t), -1)
        a = m.adv(hand_standardize(jnp.concatenate([f_s, f_t])))
        p_s, p_t = jax.nn.softmax(a[:len(xs)]), jax.nn.softmax(a[len(xs):])
        src = jnp.mean(jnp.log(jnp.take_along_axis(p_s, h_s[:, None], -1)))
        tgt = jnp.mean(jnp.log(1 - jnp.take_along_axis(p_t, h_t[:, None], -1)))
        return -(4.0 * src + tgt)

    (_, g_cls), (value, g_tr) = hand_grads(graphdef, params, cls, transfer)
    np.testing.assert_allclose(metrics["mdd_loss"], value, rtol=1e-5)
    assert tree_norm(g["adv"]) > 1e-4 and tree_norm(g_tr["backbone"]) > 1e-4
    # f' descends weight * transfer (maximises D) at full strength
    assert_tree_close(g["adv"], tree_axpy(METHOD.weight, g_tr["adv"]), atol)
    # backbone: CE gradient minus coeff * weight times the transfer gradient
    assert_tree_close(g["backbone"],
                      tree_axpy(-coeff * METHOD.weight, g_tr["backbone"], g_cls["backbone"]),
                      atol)
    # the head only provides the (constant) pseudo-labels yhat: source CE only
    assert_tree_close(g["head"], g_cls["head"], atol)
    # no pull along the feature scale: d/ds transfer(backbone s * (W, b)) = <g_W, W> + <g_b, b>
    p = nnx.to_pure_dict(params)["backbone"]
    radial = sum(float(jnp.vdot(g_tr["backbone"][k], p[k])) for k in ("kernel", "bias"))
    assert abs(radial) < 1e-4 * tree_norm(g_tr["backbone"])


def test_feature_scale_cannot_inflate_the_disparity():
    """The digits failure: reading raw features, the backbone raised margin * CE(f'_s, yhat_s)
    without bound by growing its feature scale (LeNet has no normalisation)."""
    graphdef, params = tiny(METHOD)
    batch = make_batch(shift=1.0)

    def terms(method, s):
        _, m, _ = evaluate(method, graphdef, rescaled(params, s), batch, PROGRESS)
        return np.asarray([m["adv_source_ce"], m["adv_target_log1mp"], m["mdd_loss"]])

    for s in (10.0, 1000.0):
        np.testing.assert_allclose(terms(METHOD, s), terms(METHOD, 1.0), rtol=1e-4)
    raw = MDD(weight=0.7, margin=4.0, grl_max=0.1, standardize=False)
    assert terms(raw, 1000.0)[0] > 10 * terms(raw, 1.0)[0]  # what standardising removes


def test_bad_values():
    for bad in ({"margin": 0.0}, {"grl_max": -1.0}, {"schedule": "linear"}, {"adv_hidden": -1},
                {"adv_hidden": True}):
        with pytest.raises(JtlError):
            MDD(**bad)

