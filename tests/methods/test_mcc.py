"""MCC: the class-confusion loss against numpy written from the paper's formula, its
extremes, constant entropy weights, and the method total CE + weight * L_MCC."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from method_testkit import evaluate, make_batch, np_ce, np_forward, np_softmax, tiny

from jtl.errors import JtlError
from jtl.methods.mcc import MCC, class_confusion

LOGITS = np.asarray([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2], [-1.0, 3.0, 0.0],
                     [0.5, 0.4, 2.5], [1.5, 1.4, -0.5]])

confusion = jax.jit(class_confusion, static_argnums=1)


def np_mcc(logits: np.ndarray, temperature: float) -> float:
    """Jin et al. 2020, Eq. 1-6, element by element."""
    b, c = logits.shape
    p = np_softmax(np.asarray(logits, np.float64) / temperature)
    h = np.asarray([-sum(pj * np.log(pj) for pj in row) for row in p])
    w = b * (1 + np.exp(-h)) / np.sum(1 + np.exp(-h))
    corr = np.zeros((c, c))
    for j in range(c):
        for k in range(c):
            corr[j, k] = sum(w[i] * p[i, j] * p[i, k] for i in range(b))
    norm = np.asarray([[corr[j, k] / sum(corr[m, k] for m in range(c)) for k in range(c)]
                       for j in range(c)])
    return float(sum(norm[j, k] for j in range(c) for k in range(c) if j != k) / c)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_matches_the_paper_formula(temperature):
    got = confusion(jnp.asarray(LOGITS, jnp.float32), temperature)
    np.testing.assert_allclose(got, np_mcc(LOGITS, temperature), rtol=1e-5)


def test_extremes():
    # uniform predictions: every normalised column is 1/C, off-diagonal mass (C-1)/C
    np.testing.assert_allclose(confusion(jnp.zeros((4, 5)), 2.5), 4 / 5, rtol=1e-6)
    # each sample certain of one class (several per class): no two classes co-occur
    certain = 50.0 * jax.nn.one_hot(jnp.asarray([0, 1, 2, 1]), 3)
    assert float(confusion(certain, 1.0)) < 1e-6
    # temperature scaling reveals confusion that confident logits hide
    assert float(confusion(jnp.asarray(LOGITS), 2.5)) > float(confusion(jnp.asarray(LOGITS), 1.0))


def test_entropy_weights_are_constants():
    """The gradient equals that of the same formula with the weights w held fixed."""
    z = jnp.asarray(LOGITS, jnp.float32)
    t = 2.5
    p = jax.nn.softmax(z / t)
    h = -jnp.sum(p * jnp.log(p), -1)
    w = len(z) * (1 + jnp.exp(-h)) / jnp.sum(1 + jnp.exp(-h))

    def fixed_w(u):
        q = jax.nn.softmax(u / t)
        corr = (q * w[:, None]).T @ q
        corr = corr / corr.sum(0)
        return (corr.sum() - jnp.trace(corr)) / z.shape[1]

    g = jax.jit(jax.grad(lambda u: class_confusion(u, t)))(z)
    np.testing.assert_allclose(g, jax.jit(jax.grad(fixed_w))(z), rtol=1e-4, atol=1e-7)
    assert float(jnp.abs(g).sum()) > 1e-3


def test_method_total_is_ce_plus_weighted_mcc():
    method = MCC(weight=0.6, temperature=2.5)
    graphdef, params = tiny(method)
    batch = make_batch(shift=0.5)
    loss, metrics, g = evaluate(method, graphdef, params, batch)
    z_s = np_forward(params, batch["source"]["x"])[1]
    z_t = np_forward(params, batch["target"]["x"])[1]
    mcc = np_mcc(z_t, 2.5)
    np.testing.assert_allclose(metrics["mcc_loss"], mcc, rtol=1e-4)
    np.testing.assert_allclose(loss, np_ce(z_s, batch["source"]["y"]) + 0.6 * mcc, rtol=1e-5)
    assert float(jnp.abs(g["head"]["kernel"]).sum()) > 0
    with pytest.raises(JtlError):
        MCC(temperature=0.0)
