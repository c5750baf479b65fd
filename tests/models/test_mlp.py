"""The MLP's `activation` option: sigmoid hidden units when asked (DANN's shallow network),
ReLU when null, and a null key leaves every config made before it with its fingerprint."""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf

from jtl import rundir
from jtl.errors import JtlError
from jtl.models.mlp import MLP
from tests.conftest import compose_cfg


def plain(overrides: list[str]) -> dict:
    """The composed config as the trainer saves it (plain containers)."""
    return OmegaConf.to_container(compose_cfg(overrides))


def hidden_out(activation: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(the hidden layer's output, its pre-activation) on random inputs."""
    net = MLP((6,), nnx.Rngs(0), hidden=(5,), activation=activation)
    x = jax.random.normal(jax.random.key(1), (4, 6))
    return np.asarray(net(x)), np.asarray(net.blocks[0].linear(x))


@pytest.mark.parametrize(("activation", "fn"), [
    ("sigmoid", jax.nn.sigmoid), ("tanh", jnp.tanh), ("relu", jax.nn.relu),
    (None, jax.nn.relu)])
def test_hidden_layer_applies_the_named_activation(activation, fn):
    out, pre = hidden_out(activation)
    np.testing.assert_allclose(out, np.asarray(fn(pre)), rtol=1e-6)


def test_sigmoid_units_lie_in_the_open_unit_interval():
    out, pre = hidden_out("sigmoid")
    assert (pre < 0).any() and (out > 0).all() and (out < 1).all()


def test_unknown_activation_is_one_line():
    with pytest.raises(JtlError, match=r"model.activation='gelu': use one of"):
        MLP((6,), nnx.Rngs(0), hidden=(5,), activation="gelu")


def test_dann_shallow_preset_is_one_layer_of_50_sigmoid_units():
    cfg = compose_cfg(["model=dann_shallow"])
    assert (cfg.model.name, list(cfg.model.hidden), cfg.model.activation) == (
        "mlp", [50], "sigmoid")
    net = MLP((5000,), nnx.Rngs(0), hidden=tuple(cfg.model.hidden),
              activation=cfg.model.activation)
    assert len(net.blocks) == 1 and net.feature_dim == 50


def test_null_activation_leaves_old_identities_unchanged():
    """The amazon_text study's runs (made before the key existed) keep their fingerprint, and
    a config saved without the key has the identity of one with activation: null."""
    cfg = plain(["experiment=amazon_b2k", "method=source_only", "trainer.progress=false"])
    assert cfg["model"]["activation"] is None
    assert rundir.fingerprint(cfg) == "a320ab07322cc42f"  # amazon_text source_only seed0
    old = copy.deepcopy(cfg)
    del old["model"]["activation"]
    assert rundir.identity(old) == rundir.identity(cfg)
    assert rundir.fingerprint(plain(["model=mlp", "model.activation=sigmoid"])) != (
        rundir.fingerprint(plain(["model=mlp"])))
