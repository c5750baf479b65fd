"""BatchNorm when fine-tuning (`transfer.bn`): under `train` (the default) the trained blocks
normalise with batch statistics and their running averages move; under `frozen` every backbone
BatchNorm keeps its running statistics; either way the blocks a recipe freezes (freeze_k,
feature_extractor) stay bit-identical, statistics included. ResNet-18 and EfficientNet-Lite0
on converted random checkpoints, two SGD steps of the trainer's own step."""

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
from jtl.models import build_network, param_paths
from jtl.models.efficientnet_lite import params as EP
from jtl.models.resnet_imagenet import params as RP
from jtl.train.optim import build_optimizer
from jtl.train.step import frozen_norms, init_state, make_step, stat_paths
from jtl.transfer import Recipe
from tests.conftest import compose_cfg
from tests.fixtures.resnet.weights import torchvision_state_dict
from tests.models.test_efficientnet_lite import lukemelas_state_dict
from tests.models.test_pretrained import tame

SIDE, BATCH = 32, 4


def converted(name: str):
    if name == "resnet18":
        return RP.convert(torchvision_state_dict("resnet18"), 18)
    return EP.convert(tame(lukemelas_state_dict(seed=1)), 16)


def run(name: str, overrides: list[str]) -> tuple[dict, dict, list[str]]:
    """(params before, params after 2 steps, stat paths) of `model=name` under a recipe. The
    backbones are cut to their first 5 blocks (`keep_blocks`): a third of the compile time,
    and blocks 3-4 still train past freeze_k=3."""
    cfg = compose_cfg([f"model={name}", "model.weights=/w.safetensors", *overrides])
    schema.validate(cfg)
    recipe = Recipe.from_cfg(cfg.transfer)
    method = build_method({"name": "source_only"})
    net = nnx.eval_shape(lambda: build_network(
        {"name": name, "input_shape": [SIDE, SIDE, 3]}, 5, method, 0,
        keep_blocks=recipe.keep_blocks))
    graphdef, shapes = nnx.split(net)
    shapes = shapes.to_pure_dict()
    params, _ = RP.load_into(shapes, converted(name))  # blocks cut away: reported unused
    rng = np.random.default_rng(0)
    params["head"] = {k: (0.1 * rng.standard_normal(v.shape)).astype(np.float32)
                      for k, v in params["head"].items()}
    params = jax.tree.map(jnp.asarray, params)
    freeze = recipe.freeze(cfg.get("freeze"), len(net.backbone.blocks))
    stats = stat_paths(net)
    tx = build_optimizer({"name": "sgd", "lr": 0.05, "momentum": 0.9}, params, 2,
                         method.trainable, freeze, recipe.all_groups(len(net.backbone.blocks)),
                         fixed=stats)
    step = jax.jit(make_step(graphdef, method, tx, 2, frozen_norms(net, freeze)))
    state = init_state(params, tx)
    for i in range(2):
        x = jax.random.normal(jax.random.key(i), (BATCH, SIDE, SIDE, 3))
        state, _ = step(state, {"source": {"x": x, "y": jnp.arange(BATCH) % 5}},
                        jax.random.key(9))
    return params, state["params"], stats


def changed(before: dict, after: dict) -> dict[str, bool]:
    flat_b = dict(zip(param_paths(before), jax.tree.leaves(before), strict=True))
    flat_a = dict(zip(param_paths(after), jax.tree.leaves(after), strict=True))
    return {p: not np.array_equal(np.asarray(flat_b[p]), np.asarray(flat_a[p])) for p in flat_b}


def block(path: str) -> int | None:
    m = re.match(r"backbone/blocks/(\d+)/", path)
    return int(m[1]) if m else None


CASES = [pytest.param("resnet18", id="resnet18"),
         pytest.param("efficientnet_lite0", id="efficientnet_lite0",
                      marks=pytest.mark.slow)]  # Lite0's step compiles in ~30 s here


@pytest.mark.parametrize("bn", ["train", "frozen"])
@pytest.mark.parametrize("name", CASES)
def test_freeze_k_keeps_frozen_blocks_and_bn_mode_decides_the_rest(name, bn):
    before, after, stats = run(name, ["transfer=freeze_k", "transfer.freeze_k=3",
                                      "transfer.keep_blocks=5",
                                      f"transfer.bn={bn}"])
    moved = changed(before, after)
    # freeze_k=3: stem + 2 blocks bit-identical, their BN statistics included
    assert not any(moved[p] for p in moved if block(p) is not None and block(p) < 3), bn
    later_stats = [p for p in stats if block(p) >= 3]
    later_kernels = [p for p in moved if block(p) is not None and block(p) >= 3
                     and p.endswith("kernel")]
    assert later_stats and later_kernels
    assert all(moved[p] for p in later_kernels), bn  # the later blocks train either way
    if bn == "train":
        assert all(moved[p] for p in later_stats)
    else:
        assert not any(moved[p] for p in stats)
    assert moved["head/kernel"]


@pytest.mark.parametrize("name", CASES)
def test_feature_extractor_keeps_the_whole_backbone(name):
    before, after, _ = run(name, ["transfer=feature_extractor", "transfer.bn=train",
                                 "transfer.keep_blocks=5"])
    moved = changed(before, after)
    assert not any(v for p, v in moved.items() if p.startswith("backbone/"))
    assert moved["head/kernel"] and moved["head/bias"]


def test_bn_key_is_checked_and_neutral_by_default():
    with pytest.raises(JtlError, match=r"transfer\.bn"):
        schema.validate(compose_cfg(["transfer=finetune", "transfer.bn=eval"]))
    with pytest.raises(JtlError, match=r"transfer\.bn='eval': use one of \['train', 'frozen'\]"):
        Recipe.from_cfg({"name": "finetune", "bn": "eval"})
    base = compose_cfg(["transfer=finetune", "pretrain=x"])
    explicit = dict(base, transfer={**base.transfer, "bn": "train"})
    without = dict(base, transfer={k: v for k, v in base.transfer.items() if k != "bn"})
    assert rundir.fingerprint(explicit) == rundir.fingerprint(without)  # old runs keep theirs
    frozen = dict(base, transfer={**base.transfer, "bn": "frozen"})
    assert rundir.fingerprint(frozen) != rundir.fingerprint(without)
    assert Recipe(bn="frozen").freeze(None, 3) == "backbone/.*/(?:mean|var)"
    assert Recipe().freeze(None, 3) is None
