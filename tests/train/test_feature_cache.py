"""The frozen-feature cache (jtl/train/features.py): a run on cached features is the frozen
run without the cache (predictions and parameters within float order), the cache is reused
(no backbone pass the second time, nor for rows another split already has), its keys change
with the weights, the pipeline, the model and the images, and a frozen backbone's BatchNorm
stays in evaluation mode (a freeze that leaves its statistics training is not cached).

A random EfficientNet-Lite0 checkpoint in the lukemelas layout at 32 x 32 on a tiny image
folder (tests/models/test_pretrained.py's helpers).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf
from safetensors.numpy import save_file

from jtl.domains.pp import Pipeline
from jtl.errors import JtlError
from jtl.train import checkpoint as ckpt
from jtl.train import features
from jtl.train.build import build_all
from jtl.train.trainer import train_and_evaluate
from tests.conftest import compose_cfg
from tests.models.test_efficientnet_lite import lukemelas_state_dict
from tests.models.test_pretrained import run_overrides, tame, write_tree

SIDE = 32
REL = 3e-5  # cached vs uncached parameters, relative: measured <= 1e-5; features x 1.001 give 6e-5


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "lite0.safetensors"
    save_file(tame(lukemelas_state_dict(seed=5)), str(path))
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 4 images whose class shows in the colour, so a probe can learn it."""
    rng = np.random.default_rng(0)
    labels = [c for c in range(3) for _ in range(4)]
    base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]], np.float32)
    images = np.clip(base[labels][:, None, None, :] + rng.normal(0, 30, (12, SIDE, SIDE, 3)),
                     0, 255).astype(np.uint8)
    root = tmp_path_factory.mktemp("tree") / "images"
    write_tree(root, images, labels)
    return root


def overrides(tree: Path, weights: Path, cache: Path, *extra: str) -> list[str]:
    return [*run_overrides(tree, weights, SIDE), f"paths.tfds_dir={cache}",
            "transfer=feature_extractor", "neck=bottleneck", "neck.bottleneck_dim=8",
            "method=dann", "optim=sgd", "optim.lr=0.05", "trainer.steps=4",
            "trainer.batch_size=4", "trainer.eval_every=2", "trainer.log_every=2",
            "trainer.checkpoint_every=4", "trainer.progress=false",
            "trainer.tensorboard=false", *extra]


def cfg_of(*args: str) -> dict:
    return OmegaConf.to_container(compose_cfg(list(args)), resolve=True)


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows run through the backbone, per `features.extract` call."""
    calls: list[int] = []
    real = features.extract

    def extract(fn, x):
        calls.append(len(x))
        return real(fn, x)

    monkeypatch.setattr(features, "extract", extract)
    return calls


@pytest.mark.slow
def test_cached_run_equals_the_uncached_frozen_run(tree: Path, weights: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    """DANN with TLlib's bottleneck on a frozen backbone, seeds 0 and 1 vmapped: with the
    cache (auto) and without (false), the same accuracies, head/neck/discriminator within
    float order, the backbone (BatchNorm statistics included) bit-identical to the
    checkpoint either way; the summary says where the features came from."""
    calls = counting(monkeypatch)
    runs = {}
    for mode in ("auto", "false"):
        # disc_norm=none: the discriminator's BatchNorm over a batch of 8 divides by small
        # stds and grows float-order noise (as tests/train/test_mesh.py found); the neck
        # keeps its BatchNorm.
        cfg = compose_cfg(overrides(tree, weights, tmp_path / "cache",
                                    f"trainer.feature_cache={mode}", "trainer.seeds=[0,1]",
                                    "method.disc_norm=none"))
        runs[mode] = train_and_evaluate(cfg, tmp_path / mode)
    assert sum(calls) == 12  # the 12 images once (train/val/test of the source; the target's
    # splits are the same images: read from the cache)
    for seed in (0, 1):
        cached, plain = runs["auto"]["runs"][seed], runs["false"]["runs"][seed]
        assert "feature_cache" in cached and "feature_cache" not in plain
        fc = cached["feature_cache"]
        assert fc["computed_rows"] + fc["reused_rows"] > 0 and len(fc["space"]) == 20
        assert set(fc["splits"]) == {f"{r}/{p}" for r in ("source", "target")
                                     for p in ("train", "val", "test")}
        for key in ("target/test/accuracy", "source/test/accuracy",
                    "selected/val/target/test/accuracy"):
            assert cached[key] == pytest.approx(plain[key], abs=1e-6), key
        assert cached["num_params"] == plain["num_params"]
        p_c, p_p = (ckpt.load_params(tmp_path / m / f"seed{seed}",
                                     nnx_params(tmp_path / m / f"seed{seed}"))[0]
                    for m in ("auto", "false"))
        for part in ("neck", "head", "disc"):
            # Float order: the cached features equal the backbone's to ~2e-7, but a ReLU
            # unit near 0 may flip between the two runs and move its own weights by ~1e-4
            # (an elementwise tolerance failed on 1-4 of 1024 such elements): the part's
            # relative change is the measure; a wrong feature or a batch-statistics backbone
            # moves it by orders of magnitude more.
            diff = relative_diff(p_c[part], p_p[part])
            print(f"seed {seed} {part}: relative difference {diff:.1e}")
            assert diff < REL, (seed, part, diff)
        jax.tree_util.tree_map(np.testing.assert_array_equal, p_c["backbone"], p_p["backbone"])
    # the backbone is the checkpoint's, BatchNorm statistics too (eval mode, never updated)
    b = build_all(json.loads(json.dumps(cfg_of(*overrides(tree, weights, tmp_path / "cache")))))
    from jtl.train.build import initial_params
    init = initial_params(cfg_of(*overrides(tree, weights, tmp_path / "cache")), b.roles.target,
                          b.method, b.net)
    jax.tree_util.tree_map(np.testing.assert_array_equal, init["backbone"], p_p["backbone"])


def relative_diff(a, b) -> float:
    """||a - b|| / ||b|| over all the leaves of two parameter trees."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    num = sum(float(np.sum((np.asarray(x) - np.asarray(y)) ** 2)) for x, y in zip(la, lb,
                                                                            strict=True))
    return float(np.sqrt(num / sum(float(np.sum(np.asarray(y) ** 2)) for y in lb)))


def nnx_params(run: Path) -> dict:
    from jtl import rundir

    b = build_all(rundir.load_config(run))
    return nnx.split(b.net)[1].to_pure_dict()


@pytest.mark.slow
def test_cache_is_reused_and_rows_are_shared(tree: Path, weights: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch):
    """A second build reads every split from disk (no backbone pass); a target scored whole
    (test=all) reuses the rows its source splits computed; the run's domains are features
    of the backbone's width, one pipeline without augmentation."""
    calls = counting(monkeypatch)
    args = overrides(tree, weights, tmp_path / "cache", "augment=[flip]")
    first = build_all(cfg_of(*args))
    assert sum(calls) == 12
    assert first.roles.feature_cache["computed_rows"] == 12
    target = first.roles.target
    assert target.train.field == "features" and target.train.pp == Pipeline(field="features")
    assert target.train.fields["features"].shape[1] == 1280
    assert isinstance(first.net.backbone, features.CachedBackbone)
    calls.clear()
    second = build_all(cfg_of(*args))
    assert calls == [] and second.roles.feature_cache["computed_rows"] == 0
    np.testing.assert_array_equal(second.roles.target.test.fields["features"],
                                  target.test.fields["features"])
    # the features are the backbone's own on the evaluation view
    assert "augment=['flip']" in second.roles.feature_cache["view"]


def test_keys_change_with_weights_pipeline_model_and_images(tmp_path: Path):
    pp = Pipeline(field="image", shape=(32, 32, 3), mean=(127.0,) * 3, std=(128.0,) * 3)
    cfg = {"model": {"name": "efficientnet_lite0", "input_shape": [32, 32, 3],
                     "weights": "/a.safetensors"}, "neck": {"bottleneck_dim": 256, "pool": None}}
    key = features.space(cfg, "aa", pp)[0]
    assert features.space({**cfg, "model": {**cfg["model"], "weights": "/b"}}, "aa", pp)[0] \
        == key  # the path is not the key, its content's sha256 is
    assert features.space(cfg, "ab", pp)[0] != key
    assert features.space(cfg, "aa", Pipeline(field="image", shape=(32, 32, 3), resize=36,
                                              eval_ops=("center_crop",)))[0] != key
    assert features.space({**cfg, "model": {**cfg["model"], "input_shape": [40, 40, 3]}},
                          "aa", pp)[0] != key
    assert features.space({**cfg, "neck": {"pool": "mean"}}, "aa", pp)[0] != key
    # augmentation is not part of a feature (the cache is the evaluation view)
    assert features.space(cfg, "aa", Pipeline(field="image", shape=(32, 32, 3),
                                              mean=(127.0,) * 3, std=(128.0,) * 3,
                                              augment=("flip",)))[0] == key
    # entries: by the rows' content; a changed image is a new entry, computed for that row only
    x = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    store = features.Store(tmp_path, key, {})
    seen: list[int] = []

    def fn(b):
        seen.append(len(b))
        return b.reshape(len(b), -1)[:, :3].astype(np.float32)

    f1, e1 = store.get(x, fn, "a")
    y = x.copy()
    y[2, 0, 0, 0] ^= 1
    f2, e2 = store.get(y, fn, "b")
    assert e1 != e2 and store.computed == 6 and store.reused == 4
    np.testing.assert_array_equal(f2[[0, 1, 3, 4]], f1[[0, 1, 3, 4]])
    assert f2[2, 0] == y[2, 0, 0, 0]
    f3, e3 = store.get(x[[4, 0]], fn, "c")  # a subset in another order: read, not computed
    assert store.computed == 6 and e3 not in (e1, e2)
    np.testing.assert_array_equal(f3, f1[[4, 0]])
    assert sorted(p.name for p in store.entries()) == sorted([e1, e2, e3])


@pytest.mark.slow
def test_a_backbone_batchnorm_in_train_mode_is_not_cached(tree: Path, weights: Path,
                                                          tmp_path: Path):
    """Freezing the backbone's weights but not its BatchNorm statistics leaves them in train
    mode (batch statistics: the features change with the batch), so the run is not cached;
    nor when the backbone trains, when the method reads the input, or with feature_cache
    false; `true` says why in one line."""
    def reason(*extra: str) -> str | None:
        cfg = cfg_of(*overrides(tree, weights, tmp_path / "c"), *extra)
        roles, method, net = build_all_uncached(cfg)
        return features.why_not(cfg, [roles.target], method, net)

    assert reason() is None
    assert "BatchNorm" in reason("freeze='backbone/.*/(kernel|scale|bias)'")
    assert "backbone trains" in reason("transfer=finetune")
    assert "false" in reason("trainer.feature_cache=false")
    assert "init_from/pretrain loads the backbone" in reason("init_from=/a/run")
    assert reason("init_from=/a/run", "dont_load='backbone/.*'") is None
    with pytest.raises(JtlError, match=r"feature_cache=true: .* \(the backbone trains"):
        build_all(cfg_of(*overrides(tree, weights, tmp_path / "c"), "transfer=finetune",
                         "trainer.feature_cache=true"))


def build_all_uncached(cfg: dict):
    from jtl.methods import build_method
    from jtl.train.build import load_roles, model_input_shape, network

    roles = load_roles(cfg)
    method = build_method(cfg["method"])
    net = nnx.eval_shape(lambda: network(cfg, roles.target.num_classes, method,
                                         model_input_shape(cfg, roles.target)))
    return roles, method, net
