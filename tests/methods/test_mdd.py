"""MDD: the disparity against numpy written from the paper's formula, and the adversarial
game: f' (`adv/`) descends the transfer term at full strength, the backbone gets exactly
-coeff * weight times its gradient, the head learns from the source CE only."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
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


def np_adv(params, f: np.ndarray) -> np.ndarray:
    a = jax.tree.map(lambda v: np.asarray(v, np.float64), params["adv"])
    return f @ np.asarray(a["kernel"]) + np.asarray(a["bias"])


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
    d = np_discrepancy(y_s, np_adv(params, f_s), y_t, np_adv(params, f_t), 4.0)
    np.testing.assert_allclose(metrics["mdd_loss"], -d, rtol=1e-4)
    np.testing.assert_allclose(loss, np_ce(y_s, batch["source"]["y"]) - 0.7 * d, rtol=1e-5)
    lam = 0.1 * float(dann_lambda(jnp.float32(PROGRESS)))
    np.testing.assert_allclose(metrics["lambda"], lam, rtol=1e-6)


def test_adversary_learns_and_backbone_gets_the_reversed_gradient():
    graphdef, params = tiny(METHOD)
    batch = make_batch(shift=1.0)
    xs, ys, xt = batch["source"]["x"], batch["source"]["y"], batch["target"]["x"]
    _, metrics, g = evaluate(METHOD, graphdef, params, batch, PROGRESS)
    coeff = float(metrics["lambda"])
    assert 0.01 < coeff < 0.1  # a point where a missing or wrong coefficient would show

    def cls(m):
        return ce(m.head(m.backbone(xs)), ys)

    def transfer(m):  # -D as if everything minimised it (no reversal); argmax is constant
        f_s, f_t = m.backbone(xs), m.backbone(xt)
        h_s = jnp.argmax(m.head(f_s), -1)
        h_t = jnp.argmax(m.head(f_t), -1)
        p_s, p_t = jax.nn.softmax(m.adv(f_s)), jax.nn.softmax(m.adv(f_t))
        src = jnp.mean(jnp.log(jnp.take_along_axis(p_s, h_s[:, None], -1)))
        tgt = jnp.mean(jnp.log(1 - jnp.take_along_axis(p_t, h_t[:, None], -1)))
        return -(4.0 * src + tgt)

    (_, g_cls), (value, g_tr) = hand_grads(graphdef, params, cls, transfer)
    np.testing.assert_allclose(metrics["mdd_loss"], value, rtol=1e-5)
    assert tree_norm(g["adv"]) > 1e-4 and tree_norm(g_tr["backbone"]) > 1e-4
    # f' descends weight * transfer (maximises D) at full strength
    assert_tree_close(g["adv"], tree_axpy(METHOD.weight, g_tr["adv"]))
    # backbone: CE gradient minus coeff * weight times the transfer gradient
    assert_tree_close(g["backbone"],
                      tree_axpy(-coeff * METHOD.weight, g_tr["backbone"], g_cls["backbone"]))
    # the head only provides the (constant) pseudo-labels yhat: source CE only
    assert_tree_close(g["head"], g_cls["head"])


def test_bad_values():
    for bad in ({"margin": 0.0}, {"grl_max": -1.0}, {"schedule": "linear"}):
        with pytest.raises(JtlError):
            MDD(**bad)
