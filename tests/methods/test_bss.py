"""Batch Spectral Shrinkage: the penalty is the sum of the k smallest squared singular values
of the feature batch, added to the target cross-entropy with weight eta."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from method_testkit import evaluate, make_batch, np_ce, np_forward, tiny

from jtl.methods.bss import BSS, spectral_shrinkage


def test_shrinkage_is_the_smallest_squared_singular_values():
    f = np.random.default_rng(0).normal(size=(6, 4))
    sigma = np.linalg.svd(f, compute_uv=False)
    np.testing.assert_allclose(spectral_shrinkage(jnp.asarray(f), 1), sigma[-1] ** 2, rtol=1e-5)
    np.testing.assert_allclose(spectral_shrinkage(jnp.asarray(f), 2),
                               (sigma[-2:] ** 2).sum(), rtol=1e-5)


def test_loss_is_target_ce_plus_eta_times_shrinkage_and_reads_no_source():
    method = BSS(eta=0.5, k=1)
    graphdef, params = tiny(method)
    batch = make_batch()
    batch = {"target": {**batch["target"], "y": jnp.asarray([0, 1, 1, 0, 1])}}
    loss, metrics, grads = evaluate(method, graphdef, params, batch)
    assert float(metrics["bss"]) > 0
    feats, logits = np_forward(params, batch["target"]["x"])
    shrink = np.linalg.svd(feats, compute_uv=False)[-1] ** 2
    np.testing.assert_allclose(loss, np_ce(logits, batch["target"]["y"]) + 0.5 * shrink,
                               rtol=1e-4)
    assert np.isfinite(np.asarray(grads["backbone"]["kernel"])).all()
    assert method.uses == frozenset({"target/x", "target/y"})
