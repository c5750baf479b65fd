"""Entropy minimisation: the loss is CE(source) + weight * the mean target entropy, by hand."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from method_testkit import evaluate, make_batch, np_ce, np_forward, np_softmax, tiny

from jtl.methods.entropy_min import EntropyMin
from jtl.methods.transductive import entropy


def test_loss_equals_hand_computed_entropy():
    method = EntropyMin(weight=0.3)
    graphdef, params = tiny(method)
    batch = make_batch(shift=0.5)
    loss, metrics, _ = evaluate(method, graphdef, params, batch)
    pt = np_softmax(np_forward(params, batch["target"]["x"])[1])
    h = np.mean([-sum(p_c * np.log(p_c) for p_c in row) for row in pt])
    ce = np_ce(np_forward(params, batch["source"]["x"])[1], batch["source"]["y"])
    np.testing.assert_allclose(metrics["target_entropy"], h, rtol=1e-5)
    np.testing.assert_allclose(loss, ce + 0.3 * h, rtol=1e-5)


def test_entropy_extremes():
    np.testing.assert_allclose(entropy(jnp.zeros((2, 5))), np.log(5), rtol=1e-6)
    saturated = entropy(jnp.asarray([[200.0, -200.0, 0.0]]))
    assert np.isfinite(saturated).all() and float(saturated[0]) < 1e-6
