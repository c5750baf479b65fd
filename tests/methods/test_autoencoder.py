"""Autoencoder: the loss is the reconstruction MSE, gradients reach backbone and decoder only,
and no label reaches it (real and shuffled labels train identically)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from unsup_kit import assert_identical, loss_grads, train_params

from jtl.errors import JtlError
from jtl.methods.autoencoder import Autoencoder


def test_gradients_reach_backbone_and_decoder_only():
    g, metrics = loss_grads(Autoencoder(pixels=64, dec_hidden=5))
    assert float(jnp.abs(g["head"]["kernel"]).sum()) == 0.0
    assert float(jnp.abs(g["backbone"]["blocks"][0]["linear"]["kernel"]).sum()) > 0
    assert float(jnp.abs(g["dec"]["out"]["kernel"]).sum()) > 0
    # Sigmoid pixels vs uniform [0, 1] images: the MSE is a mean of squares below 1.
    assert 0.0 < float(metrics["mse"]) < 1.0
    assert Autoencoder.uses == frozenset({"source/x"})


def test_a_wrong_pixel_count_is_a_user_error():
    with pytest.raises(JtlError, match=r"method\.pixels=64"):
        loss_grads(Autoencoder(pixels=784, dec_hidden=5))


def test_no_label_reaches_autoencoder(fast_cfg, tmp_path):
    real = train_params(fast_cfg, tmp_path, "autoencoder", "real")
    assert_identical(real, train_params(fast_cfg, tmp_path, "autoencoder", "shuffled"))
