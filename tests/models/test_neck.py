"""The neck between backbone and head (TLlib's ImageClassifier bottleneck and pool layer): by
default nothing (the parameters a network had before the slot), with a bottleneck the width
the head and every method module read, and a run with one trains."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl import rundir, schema
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.models import MODELS, build_network, param_paths
from jtl.train import train_and_evaluate
from jtl.train.checkpoint import manager
from jtl.transfer import Recipe
from tests.conftest import FAST, compose_cfg

LENET = {"name": "lenet", "input_shape": [28, 28, 1]}


def pure(net: nnx.Module) -> dict:
    return nnx.split(net)[1].to_pure_dict()


def test_no_neck_draws_the_parameters_of_the_network_before_the_slot():
    """backbone, then the method's modules, then the head, from one Rngs: as build_network
    drew them before the neck existed (so old checkpoints, init seeds and numbers hold)."""
    method = build_method({"name": "dann"})
    rngs = nnx.Rngs(3)
    backbone = MODELS.get("lenet")(input_shape=(28, 28, 1), rngs=rngs)
    disc = method.modules(backbone.feature_dim, 10, rngs)["disc"]
    head = nnx.Linear(backbone.feature_dim, 10, rngs=rngs)
    before = {"backbone": pure(backbone), "disc": pure(disc), "head": pure(head)}
    for neck in (None, {"bottleneck_dim": None, "pool": None}):
        now = pure(build_network(LENET, 10, method, 3, neck=neck))
        assert param_paths(now) == param_paths(before)
        jax.tree.map(np.testing.assert_array_equal, now, before)


@pytest.mark.parametrize(("method", "module", "width"), [
    ("dann", "disc", 16), ("cdan", "disc", 16 * 10), ("mdd", "adv", 16)])
def test_a_bottleneck_is_the_feature_width_of_head_and_method_modules(method, module, width):
    net = nnx.eval_shape(lambda: build_network(LENET, 10, build_method({"name": method}), 0,
                                               neck={"bottleneck_dim": 16}))
    params = pure(net)
    assert params["neck"]["linear"]["kernel"].shape == (500, 16)  # LeNet's 500 features
    assert {"mean", "var", "scale", "bias"} <= set(params["neck"]["norm"])
    assert params["head"]["kernel"].shape == (16, 10)
    first = next(p for p in param_paths(params) if p.startswith(f"{module}/")
                 and p.endswith("kernel"))
    assert dict(zip(param_paths(params), jax.tree.leaves(params), strict=True))[
        first].shape[0] == width


def test_the_head_and_methods_read_the_bottleneck_output():
    net = build_network(LENET, 10, build_method({"name": "dann"}), 0,
                        neck={"bottleneck_dim": 16})
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 28, 28, 1)), jnp.float32)
    f = net.features(x)
    assert f.shape == (3, 16) and float(f.min()) >= 0.0  # after the ReLU
    np.testing.assert_allclose(net(x), net.head(f), rtol=1e-6)


def test_pool_mean_averages_a_cut_backbone_maps():
    """keep_blocks=2 cuts LeNet after its second conv block: flattened 4x4x50 = 800 features,
    pooled 50, the spatial mean of those maps."""
    method = build_method({"name": "source_only"})
    flat = build_network(LENET, 10, method, 0, keep_blocks=2)
    pooled = build_network(LENET, 10, method, 0, keep_blocks=2, neck={"pool": "mean"})
    assert flat.neck.feature_dim == 800 and pooled.neck.feature_dim == 50
    x = jnp.ones((2, 28, 28, 1))
    np.testing.assert_allclose(pooled.features(x),
                               flat.features(x).reshape(2, 4, 4, 50).mean(axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(JtlError, match="pool=mean averages"):
        build_network(LENET, 10, method, 0, neck={"pool": "mean"})  # LeNet's flat 500


def test_neck_config_and_schema():
    assert compose_cfg([])["neck"] is None
    cfg = compose_cfg(["experiment=digits_m2u", "model=mlp", "neck=bottleneck",
                       "neck.bottleneck_dim=64"])
    assert dict(cfg["neck"]) == {"bottleneck_dim": 64, "pool": None}
    schema.validate(cfg)
    for bad, match in ((["neck=bottleneck", "neck.bottleneck_dim=0"], "neck.bottleneck_dim"),
                       (["neck=pool", "neck.pool=max"], "neck.pool"),
                       (["neck=bottleneck", "+neck.width=3"], "neck has no key")):
        with pytest.raises(JtlError, match=match):
            schema.validate(compose_cfg(bad))
    # the default is outside the run's identity: old run dirs keep their fingerprint
    assert "neck" not in rundir.identity(compose_cfg([]))


def test_recipes_train_the_neck_like_the_head():
    lp = Recipe.from_cfg({"name": "linear_probe", "groups": [{"params": "head/.*",
                                                              "lr_mult": 10.0}]})
    (group,) = lp.all_groups(4)
    assert group["lr_mult"] == 10.0
    for p in ("head/kernel", "neck/linear/kernel"):
        assert re.fullmatch(group["params"], p)
    assert lp.dont_load("head/.*") == "(?:head|neck)/.*"
    assert lp.dont_load("disc/.*") == "disc/.*"
    assert Recipe().dont_load("head/.*") == "head/.*"  # no recipe: the regex as written


def test_a_run_with_a_bottleneck_trains(tmp_path):
    cfg = compose_cfg([*FAST, "method=target_only", "neck=bottleneck", "neck.bottleneck_dim=32",
                       "trainer.steps=60", "trainer.eval_every=60",
                       "trainer.checkpoint_every=60", "trainer.log_every=60"])
    s = train_and_evaluate(cfg, tmp_path / "run")
    assert s["status"] == "completed" and s["target/test/accuracy"] > 0.5
    with manager(tmp_path / "run" / "checkpoints") as m:
        params = m.restore(m.latest_step())["params"]
    assert params["head"]["kernel"].shape == (32, 10)
    assert float(np.abs(np.asarray(params["neck"]["norm"]["mean"])).max()) > 0  # BN stats moved
