"""Entropy minimisation: the loss is CE(source) + weight * the mean target entropy, by hand."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx
from method_testkit import evaluate, make_batch, tiny

from jtl.methods.entropy_min import EntropyMin
from jtl.methods.transductive import entropy


def np_logits(params: nnx.State, x: jnp.ndarray) -> np.ndarray:
    p = nnx.to_pure_dict(params)
    f = np.asarray(x) @ np.asarray(p["backbone"]["kernel"]) + np.asarray(p["backbone"]["bias"])
    return f @ np.asarray(p["head"]["kernel"]) + np.asarray(p["head"]["bias"])


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_loss_equals_hand_computed_entropy():
    method = EntropyMin(weight=0.3)
    graphdef, params = tiny(method)
    batch = make_batch(shift=0.5)
    loss, metrics, _ = evaluate(method, graphdef, params, batch)
    pt = np_softmax(np_logits(params, batch["target"]["x"]))
    h = np.mean([-sum(p_c * np.log(p_c) for p_c in row) for row in pt])
    ps = np_softmax(np_logits(params, batch["source"]["x"]))
    y = np.asarray(batch["source"]["y"])
    ce = -np.mean(np.log(ps[np.arange(len(y)), y]))
    np.testing.assert_allclose(metrics["target_entropy"], h, rtol=1e-5)
    np.testing.assert_allclose(loss, ce + 0.3 * h, rtol=1e-5)


def test_entropy_extremes():
    np.testing.assert_allclose(entropy(jnp.zeros((2, 5))), np.log(5), rtol=1e-6)
    saturated = entropy(jnp.asarray([[200.0, -200.0, 0.0]]))
    assert np.isfinite(saturated).all() and float(saturated[0]) < 1e-6
