"""EfficientNet-Lite: parity with the PyTorch reference on the published ImageNet weights, the
converter's report and refusals, the Lite sizes, and the backbone contract.

Parity tolerance: atol = rtol = 1e-4 in float32 (shared/models/README.md's suggestion); on
XLA:CPU the default matmul/conv precision is already float32, so no precision override is
needed (measured: logits 1.4e-5, features 4.8e-6, worst block mean 1.1e-5).
The tests that read ../shared/models skip when it is absent; the rest use a checkpoint made
here in the lukemelas layout from random numbers (`lukemelas_state_dict`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf

from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.models import Network, build_network, param_paths
from jtl.models.efficientnet_lite import modeling as M
from jtl.models.efficientnet_lite import params as P
from jtl.train.step import frozen_norms, stat_paths
from tests.conftest import ROOT, compose_cfg

SHARED = ROOT.parent / "shared" / "models"
WEIGHTS = SHARED / "efficientnet_lite0.safetensors"
REFERENCE = SHARED / "efficientnet_lite0_reference.npz"
SHA256 = {WEIGHTS: "8cee8ab090c69e3c7fe3228d1d75599a807502a0f88d1900f4abf69a306246e3",
          REFERENCE: "9ccdafe7b30c26fcf5f73f1464c9fbe73897c695b47cb4cacda62b0658d9c704"}
needs_shared = pytest.mark.skipif(
    not (WEIGHTS.is_file() and REFERENCE.is_file()),
    reason=f"{SHARED} (the EfficientNet-Lite0 weights and reference outputs) is absent")
TOL = {"atol": 1e-4, "rtol": 1e-4}
# Published parameter counts with the 1000-class fc (Google's Lite README: 4.7M, 5.4M, 6.1M,
# 8.2M, 13.0M; Lite0's exact count from shared/models/README.md).
PARAMS = {0: 4_652_008, 1: 5.4, 2: 6.1, 3: 8.2, 4: 13.0}  # millions, except Lite0


def lukemelas_state_dict(width: float = 1.0, depth: float = 1.0, seed: int = 0,
                         num_classes: int = 1000) -> dict[str, np.ndarray]:
    """A checkpoint in efficientnet-lite-pytorch's layout (OIHW convs, BN buffers with
    num_batches_tracked, fc (out, in)) with random values."""
    rng = np.random.default_rng(seed)
    sd: dict[str, np.ndarray] = {}

    def conv(key: str, o: int, i: int, k: int) -> None:
        sd[f"{key}.weight"] = rng.normal(size=(o, i, k, k)).astype(np.float32)

    def bn(key: str, c: int) -> None:
        for leaf in ("weight", "bias", "running_mean"):
            sd[f"{key}.{leaf}"] = rng.normal(size=c).astype(np.float32)
        sd[f"{key}.running_var"] = rng.uniform(0.5, 2, size=c).astype(np.float32)
        sd[f"{key}.num_batches_tracked"] = np.zeros((), np.int64)

    conv("_conv_stem", M.STEM, 3, 3)
    bn("_bn0", M.STEM)
    specs = M.block_specs(width, depth)
    for n, s in enumerate(specs):
        mid = s.cin * s.expand
        if s.expand != 1:
            conv(f"_blocks.{n}._expand_conv", mid, s.cin, 1)
            bn(f"_blocks.{n}._bn0", mid)
        conv(f"_blocks.{n}._depthwise_conv", mid, 1, s.kernel)
        bn(f"_blocks.{n}._bn1", mid)
        conv(f"_blocks.{n}._project_conv", s.cout, mid, 1)
        bn(f"_blocks.{n}._bn2", s.cout)
    conv("_conv_head", M.HEAD, specs[-1].cout, 1)
    bn("_bn1", M.HEAD)
    sd["_fc.weight"] = rng.normal(size=(num_classes, M.HEAD)).astype(np.float32)
    sd["_fc.bias"] = rng.normal(size=num_classes).astype(np.float32)
    return sd


def abstract(module_fn) -> tuple[nnx.GraphDef, dict]:
    """(graphdef, pure-dict state of ShapeDtypeStructs): the shapes without a random init."""
    graphdef, state = nnx.split(nnx.eval_shape(module_fn))
    return graphdef, state.to_pure_dict()


def lite0_classifier() -> M.ImageNetClassifier:
    return M.ImageNetClassifier(M.EfficientNetLite0((224, 224, 3), nnx.Rngs(0)), nnx.Rngs(0))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_shared
def test_shared_files_are_the_published_ones():
    for path, digest in SHA256.items():
        assert _sha256(path) == digest, f"{path} is not the file shared/models/README.md lists"


@needs_shared
def test_parity_with_pytorch_reference():
    """Published weights -> the reference's pooled features and logits, and the stem's and
    every block's spatial means (to locate a mismatch)."""
    graphdef, shapes = abstract(lite0_classifier)
    params, report = P.load_pretrained(WEIGHTS, shapes)
    assert report.missing == [] and report.unused == [] and len(report.ignored) == 49
    assert len(report.loaded) == 247  # every float tensor of the file
    ref = np.load(REFERENCE)
    x = jnp.asarray(ref["input"].transpose(0, 2, 3, 1))  # NCHW -> NHWC
    # the constants reproduce the reference's preprocessing of its uint8 crops
    np.testing.assert_allclose(M.normalize(ref["images_uint8"]), x, atol=1e-6, rtol=0)

    @jax.jit
    def run(params, x):
        model = nnx.merge(graphdef, params)
        means = []
        for block in model.backbone.blocks:
            x = block(x)
            means.append(x.mean(axis=(1, 2)))
        features = x.mean(axis=(1, 2))
        return features, model.fc(features), means

    features, logits, means = run(params, x)
    names = ["stem_mean"] + [f"block{i:02d}_mean" for i in range(16)]
    for name, got in zip(names, means, strict=False):  # blocks[17] is the head: no reference
        np.testing.assert_allclose(got, ref[name], **TOL, err_msg=name)
    np.testing.assert_allclose(features, ref["features"], **TOL)
    np.testing.assert_allclose(logits, ref["logits"], **TOL)
    top5 = np.argsort(-np.asarray(logits), axis=1)[:, :5]
    np.testing.assert_array_equal(top5, ref["top5"])
    # the backbone's own call (jtl's features) is the same function
    full = jax.jit(lambda p, x: nnx.merge(graphdef, p).backbone(x))(params, x)
    np.testing.assert_allclose(full, features, atol=1e-6, rtol=0)


@needs_shared
def test_made_up_checkpoint_has_the_files_layout():
    """The random checkpoint the other tests use has the real file's keys, shapes and
    dtypes, so what they show holds for the real file."""
    real = P.read_checkpoint(WEIGHTS)
    made = lukemelas_state_dict()
    assert sorted(real) == sorted(made)
    for k, v in real.items():
        assert (v.shape, v.dtype) == (made[k].shape, made[k].dtype), k


def test_converter_reports_loaded_and_missing():
    """Into jtl's Network (a new 31-class head): the backbone loads, head/* is missing, the
    ImageNet fc is unused, num_batches_tracked ignored; values are transposed as stated."""
    sd = lukemelas_state_dict()
    method = build_method({"name": "source_only"})
    _, shapes = abstract(lambda: build_network(
        {"name": "efficientnet_lite0", "input_shape": [224, 224, 3]}, 31, method, 0))
    params, report = P.load_into(shapes, P.convert(sd, 16), "made-up.safetensors")
    backbone = [p for p in param_paths(shapes) if p.startswith("backbone/")]
    assert sorted(report.loaded) == sorted(backbone) and len(backbone) == 245
    assert report.missing == ["head/bias", "head/kernel"]
    assert report.unused == ["_fc.bias", "_fc.weight"]
    assert len(report.ignored) == 49 and all(k.endswith("num_batches_tracked")
                                             for k in report.ignored)
    assert report.summary() == {"file": "made-up.safetensors", "loaded": 245,
                                "missing": ["head/bias", "head/kernel"],
                                "unused": ["_fc.bias", "_fc.weight"], "ignored": 49}
    b = params["backbone"]["blocks"]
    np.testing.assert_array_equal(b[0]["conv"]["kernel"],
                                  sd["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(b[5]["depthwise"]["conv"]["kernel"][:, :, 0, :],
                                  sd["_blocks.4._depthwise_conv.weight"][:, 0].transpose(1, 2, 0))
    np.testing.assert_array_equal(b[5]["depthwise"]["bn"]["var"], sd["_blocks.4._bn1.running_var"])
    np.testing.assert_array_equal(b[17]["bn"]["scale"], sd["_bn1.weight"])
    np.testing.assert_array_equal(b[1]["project"]["bn"]["mean"], sd["_blocks.0._bn2.running_mean"])
    assert "expand" not in b[1] and "expand" in b[2]  # MBConv 0 has no expand conv
    # classifier="head" at 1000 classes puts the ImageNet fc in jtl's head
    _, shapes1k = abstract(lambda: build_network(
        {"name": "efficientnet_lite0", "input_shape": [224, 224, 3]}, 1000, method, 0))
    p1k, r1k = P.load_into(shapes1k, P.convert(sd, 16, classifier="head"))
    assert r1k.missing == [] and r1k.unused == []
    np.testing.assert_array_equal(p1k["head"]["kernel"], sd["_fc.weight"].T)


def test_shape_mismatch_names_the_key():
    sd = lukemelas_state_dict()
    method = build_method({"name": "source_only"})
    _, shapes = abstract(lambda: build_network(
        {"name": "efficientnet_lite0", "input_shape": [224, 224, 3]}, 31, method, 0))
    with pytest.raises(JtlError, match=r"'_fc\.bias' has shape \(1000,\).*'head/bias' has \(31,\); "
                                       r"checkpoint key '_fc\.weight' has shape \(1280, 1000\)"
                                       r".*'head/kernel' has \(1280, 31\)\. Give"):
        P.load_into(shapes, P.convert(sd, 16, classifier="head"), "w.safetensors")
    bad = dict(sd, **{"_blocks.3._project_conv.weight": np.zeros((41, 144, 1, 1), np.float32)})
    with pytest.raises(JtlError, match=r"'_blocks\.3\._project_conv\.weight'.*"
                                       r"'backbone/blocks/4/project/conv/kernel'"):
        P.load_into(shapes, P.convert(bad, 16))
    # another size's file (Lite1: 21 blocks) or architecture (squeeze-excite) is refused
    with pytest.raises(JtlError, match=r"_blocks\.16\..*not EfficientNet-Lite with 16 blocks"):
        P.convert(lukemelas_state_dict(1.0, 1.1), 16)
    se = dict(sd, **{"_blocks.1._se_reduce.weight": np.zeros((4, 96, 1, 1), np.float32)})
    with pytest.raises(JtlError, match=r"_se_reduce"):
        P.convert(se, 16)


def test_unreadable_weights_are_one_line(tmp_path):
    with pytest.raises(JtlError, match="no such file"):
        P.load_pretrained(tmp_path / "none.safetensors", {})
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(JtlError, match="not a readable safetensors file") as e:
        P.load_pretrained(junk, {})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("size", sorted(M.LITE_SIZES))
def test_lite_sizes(size):
    """Width/depth multipliers give the published parameter counts, and a checkpoint of
    that size in the lukemelas layout converts into it completely."""
    width, depth, res = M.LITE_SIZES[size]
    _, shapes = abstract(lambda: M.ImageNetClassifier(
        M.EfficientNetLite((res, res, 3), nnx.Rngs(0), width, depth), nnx.Rngs(0)))
    n = sum(int(np.prod(s.shape)) for p, s in zip(param_paths(shapes), jax.tree.leaves(shapes),
                                                   strict=True)
            if not re.search(r"/bn/(mean|var)$", p))
    if size == 0:
        assert n == PARAMS[0]
    else:
        assert round(n / 1e5) / 10 == PARAMS[size]
    num_blocks = len(M.block_specs(width, depth))
    _, report = P.load_into(shapes, P.convert(lukemelas_state_dict(width, depth), num_blocks))
    assert report.missing == [] and report.unused == []


@pytest.fixture(scope="module")
def built() -> Network:
    """`model=efficientnet_lite0` as composed from conf/, its weights from a made-up
    checkpoint and a zero head. Built under `eval_shape` (the constructor's code, random
    init included, traced without running it): a concrete random init costs ~8 s here, the
    first-run compiles of ~40 per-shape normal draws."""
    cfg = compose_cfg(["model=efficientnet_lite0"]).model
    assert list(cfg.input_shape) == [224, 224, 3]
    graphdef, shapes = abstract(lambda: build_network(
        OmegaConf.to_container(cfg), 31, build_method({"name": "source_only"}), seed=0))
    params, _ = P.load_into(shapes, P.convert(lukemelas_state_dict(), 16))
    params = jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype)
                          if isinstance(v, jax.ShapeDtypeStruct) else jnp.asarray(v), params)
    return nnx.merge(graphdef, params)


def test_blocks_are_addressable(built):
    """18 blocks (stem, 16 MBConv, head) -> 1280 pooled features; `freeze` regexes, the
    frozen-BN set and the BN state paths the trainer uses see them by index."""
    net = built
    assert len(net.backbone.blocks) == 18 and net.backbone.feature_dim == 1280
    paths = param_paths(nnx.split(net)[1].to_pure_dict())
    frozen = [p for p in paths if re.fullmatch("backbone/blocks/[0-3]/.*", p)]
    assert {p.split("/")[2] for p in frozen} == {"0", "1", "2", "3"}
    assert "backbone/blocks/0/conv/kernel" in frozen
    assert "backbone/blocks/17/conv/kernel" in paths and "head/kernel" in paths
    norms = frozen_norms(net, "backbone/blocks/[0-3]/.*")
    # stem 1 BN, MBConv 0 (no expand) 2, MBConv 1-2 3 each
    assert len(norms) == 1 + 2 + 3 + 3
    stats = stat_paths(net)
    assert len(stats) == 2 * 49 and all(re.search(r"/bn/(mean|var)$", p) for p in stats)
    bn = net.backbone.blocks[0].bn
    assert (bn.momentum, bn.epsilon, bn.use_running_average) == (0.99, 1e-3, True)


def test_train_mode_updates_bn_stats_and_cut_pools(built):
    """Train mode (what the step switches on) uses batch statistics and moves every running
    average; `keep_blocks` cuts and still pools per channel."""
    graphdef, state = nnx.split(built)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))

    @jax.jit
    def forward(state, x):
        model = nnx.merge(graphdef, state)
        model.train()
        out = model(x)
        return out, nnx.state(model, nnx.BatchStat)

    out, stats = forward(state, x)
    assert out.shape == (2, 31)
    before = nnx.state(built, nnx.BatchStat)
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), stats, before)
    assert all(jax.tree.leaves(moved))

    def cut_backbone() -> M.EfficientNetLite0:
        backbone = M.EfficientNetLite0((32, 32, 3), nnx.Rngs(0))
        backbone.cut(5, (32, 32, 3))  # stem + MBConv 0-3 (40 channels out)
        return backbone

    cut = nnx.eval_shape(cut_backbone)
    assert cut.feature_dim == 40 and len(cut.blocks) == 5
