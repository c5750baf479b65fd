"""SimCLR: NT-Xent on tiny cases with known values, gradients reach backbone and proj only,
and no label reaches the loss (real, shuffled and placeholder labels train identically)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from unsup_kit import assert_identical, loss_grads, train_params

from jtl.methods.simclr import SimCLR, nt_xent


def test_nt_xent_one_pair_is_zero():
    # 2 rows: each anchor's only candidate is its positive, whatever the vectors.
    z1, z2 = jnp.array([[1.0, 2.0]]), jnp.array([[-3.0, 0.5]])
    assert float(nt_xent(z1, z2, 0.5)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("tau", [0.25, 0.5, 1.0])
def test_nt_xent_orthogonal_pairs(tau):
    # Views identical and the two images orthogonal: each anchor sees its positive at
    # cosine 1 and two negatives at cosine 0.
    e = jnp.eye(2)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2.0))
    assert float(nt_xent(e, e, tau)) == pytest.approx(expected, rel=1e-5)


def test_nt_xent_scale_invariant_and_swapped_views_worse():
    rng = np.random.default_rng(0)
    z1 = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    z2 = z1 + 0.01 * jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    base = float(nt_xent(z1, z2, 0.5))
    assert float(nt_xent(3.0 * z1, 0.2 * z2, 0.5)) == pytest.approx(base, rel=1e-5)
    # Pairing each image with another's view raises the loss.
    assert float(nt_xent(z1, z2[::-1], 0.5)) > base + 0.5


def test_loss_gradients_reach_backbone_and_proj_only():
    g, metrics = loss_grads(SimCLR(proj_dim=4))
    assert float(jnp.abs(g["head"]["kernel"]).sum()) == 0.0
    assert float(jnp.abs(g["backbone"]["blocks"][0]["linear"]["kernel"]).sum()) > 0
    assert float(jnp.abs(g["proj"]["out"]["kernel"]).sum()) > 0
    assert 0.0 <= float(metrics["pair_acc"]) <= 1.0
    assert SimCLR.uses == frozenset({"source/x"})  # the trainer hands it no label


def test_no_label_reaches_simclr(fast_cfg, tmp_path):
    real = train_params(fast_cfg, tmp_path, "simclr", "real")
    assert_identical(real, train_params(fast_cfg, tmp_path, "simclr", "shuffled"))
    assert_identical(real, train_params(fast_cfg, tmp_path, "simclr", "zeros"))
