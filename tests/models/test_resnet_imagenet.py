"""ImageNet ResNet-18/50: parity with torchvision (and transformers, the second key layout)
on the fixture weights, in evaluation and training mode; the converter's report and
refusals; the sizes; the backbone contract; `model.weights` through the family hook.

No real ResNet weights are offline: tests/fixtures/resnet/make_reference.py loads weights
drawn by numpy (`tests/fixtures/resnet/weights.py`, regenerated here bit for bit, checked by
sha256) into torchvision's and transformers' ResNets and saves their outputs on 2 x 80 x 80
inputs (80 makes stage 4's stride-2 convs see an odd 5 x 5 map). Tolerance: max abs
difference <= 1e-4 in float32 under matmul precision "highest" (measured below each test).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf
from safetensors.numpy import save_file

from jtl import schema
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.models import build_network, param_paths, pretrained
from jtl.models.resnet_imagenet import modeling as M
from jtl.models.resnet_imagenet import params as P
from jtl.train.step import frozen_norms, stat_paths
from tests.conftest import ROOT, compose_cfg
from tests.fixtures.resnet import weights as W

FIXTURES = ROOT / "tests" / "fixtures" / "resnet"
TOL = 1e-4
DEPTH = {"resnet18": 18, "resnet50": 50}
# torchvision's published counts with the 1000-way fc
PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}


def reference(arch: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"reference_{arch}.npz") as f:
        return dict(f)


def abstract(module_fn) -> tuple[nnx.GraphDef, dict]:
    graphdef, state = nnx.split(nnx.eval_shape(module_fn))
    return graphdef, state.to_pure_dict()


def classifier(depth: int, side: int = 80) -> M.ImageNetClassifier:
    depths, bottleneck = M.SIZES[depth]
    return M.ImageNetClassifier(M.ImageNetResNet((side, side, 3), nnx.Rngs(0), depths,
                                                 bottleneck), nnx.Rngs(0))


@pytest.mark.parametrize("arch", list(W.ARCHS))
def test_generator_draws_the_fixtures_weights_in_both_real_layouts(arch):
    """The numpy weights are the ones the reference ran on (sha256), and their keys and shapes
    are torchvision's and, renamed, transformers' (as their state_dicts listed them)."""
    ref = reference(arch)
    sd = W.torchvision_state_dict(arch)
    assert W.digest(sd) == str(ref["weights_sha256"])
    assert list(sd) == list(ref["tv_keys"])
    assert [str(v.shape) for v in sd.values()] == list(ref["tv_shapes"])
    hf = W.to_huggingface(sd)
    assert sorted(hf) == sorted(ref["hf_keys"])
    shapes = dict(zip(ref["hf_keys"], ref["hf_shapes"], strict=True))
    assert all(str(v.shape) == shapes[k] for k, v in hf.items())
    assert P.layout(sd) == "torchvision" and P.layout(hf) == "huggingface"


def bn_counts(depth: int, side: int, batch: int) -> dict[str, int]:
    """Values per channel (B*H*W) each BN normalises, by torchvision key (PyTorch's running
    variance is unbiased: var * n / (n - 1))."""
    depths, bottleneck = M.SIZES[depth]

    def down(h: int) -> int:  # every stride-2 layer here: floor((h - 1) / 2) + 1
        return (h - 1) // 2 + 1

    h = down(side)
    out = {"bn1": batch * h * h}
    h = down(h)
    for s, n in enumerate(depths, start=1):
        for j in range(n):
            h_in, h = h, down(h) if s > 1 and j == 0 else h
            p = f"layer{s}.{j}"
            names = ("bn2", "bn3", "downsample.1") if bottleneck else ("bn1", "bn2",
                                                                       "downsample.1")
            out.update({f"{p}.{k}": batch * h * h for k in names})
            if bottleneck:
                out[f"{p}.bn1"] = batch * h_in * h_in
    return out


def _run_parity(arch: str) -> dict[str, float]:
    depth, ref = DEPTH[arch], reference(arch)
    sd = W.torchvision_state_dict(arch)
    graphdef, shapes = abstract(lambda: classifier(depth))
    params, report = P.load_into(shapes, P.convert(sd, depth))
    assert report.missing == [] and report.unused == []
    hf_params, _ = P.load_into(shapes, P.convert(W.to_huggingface(sd), depth))
    jax.tree.map(np.testing.assert_array_equal, hf_params, params)  # the same arrays
    x = jnp.asarray(ref["input"].transpose(0, 2, 3, 1))  # NCHW -> NHWC

    @jax.jit(static_argnums=2)
    def run(params, x, train):
        model = nnx.merge(graphdef, params)
        if train:
            model.train()
        means = []
        for block in model.backbone.blocks:
            x = block(x)
            means.append(x.mean(axis=(1, 2)))
        features = x.mean(axis=(1, 2))
        return (features, model.fc(features), means,
                nnx.state(model, nnx.BatchStat).to_pure_dict())

    gaps = {}
    with jax.default_matmul_precision("highest"):
        for train, pre in ((False, ""), (True, "train_")):
            features, logits, means, stats = run(params, x, train)
            for i, got in enumerate(means):
                np.testing.assert_allclose(got, ref[f"{pre}block{i:02d}_mean"], atol=TOL, rtol=0,
                                           err_msg=f"{pre}block{i}")
            gaps[f"{pre}logits"] = float(np.abs(logits - ref[f"{pre}logits"]).max())
            gaps[f"{pre}features"] = float(np.abs(features - ref[f"{pre}features"]).max())
    # training mode's running statistics, PyTorch's unbiased variance restored
    counts, gap = bn_counts(depth, x.shape[1], x.shape[0]), 0.0
    for path, key in P.convert(sd, depth).source.items():
        m = re.fullmatch(r"(.*)\.running_(mean|var)", key)
        if not m:
            continue
        got = stats
        for part in path.split("/"):
            got = got[int(part) if part.isdigit() else part]
        got, old = np.asarray(got, np.float64), sd[key].astype(np.float64)
        if m[2] == "var":
            n = counts[m[1]]
            got = 0.9 * old + (got - 0.9 * old) * n / (n - 1)
        gap = max(gap, float(np.abs(got - ref[f"train_stats:{key}"]).max()))
    gaps["train_running_stats"] = gap
    return gaps


def test_resnet18_parity_with_torchvision():
    """Evaluation and training mode (batch statistics) logits, pooled features, every
    block's spatial mean and the updated running statistics. Measured: eval logits 5.2e-6,
    features 2.9e-6; train logits 1.4e-6, features 1.4e-6, running statistics 4.9e-7."""
    gaps = _run_parity("resnet18")
    assert max(gaps.values()) <= TOL, gaps


@pytest.mark.slow  # ResNet-50's forward, twice compiled: ~40 s on 2 busy cores
def test_resnet50_parity_with_torchvision():
    """As ResNet-18's. Measured: eval logits 1.1e-5, features 6.7e-6; train logits 2.3e-6,
    features 2.4e-6, running statistics 7.3e-7."""
    gaps = _run_parity("resnet50")
    assert max(gaps.values()) <= TOL, gaps


@pytest.fixture(scope="module")
def sd18() -> dict[str, np.ndarray]:
    return W.torchvision_state_dict("resnet18")


def network_shapes(name: str, classes: int = 31, side: int = 32) -> tuple[nnx.GraphDef, dict]:
    method = build_method({"name": "source_only"})
    return abstract(lambda: build_network({"name": name, "input_shape": [side, side, 3]},
                                          classes, method, 0))


def test_converter_reports_loaded_and_missing(sd18):
    """Into jtl's Network (a new 31-class head): the backbone loads, head/* is missing, the
    ImageNet fc is unused, num_batches_tracked ignored; values transposed as stated; the
    transformers layout fills the same paths."""
    _, shapes = network_shapes("resnet18")
    params, report = P.load_into(shapes, P.convert(sd18, 18), "r18.safetensors")
    backbone = [p for p in param_paths(shapes) if p.startswith("backbone/")]
    assert sorted(report.loaded) == sorted(backbone) and len(backbone) == 100
    assert report.missing == ["head/bias", "head/kernel"]
    assert report.unused == ["fc.bias", "fc.weight"]
    assert len(report.ignored) == 20 and all(k.endswith("num_batches_tracked")
                                             for k in report.ignored)
    b = params["backbone"]["blocks"]
    np.testing.assert_array_equal(b[0]["conv"]["kernel"],
                                  sd18["conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(b[3]["downsample"]["conv"]["kernel"][0, 0],
                                  sd18["layer2.0.downsample.0.weight"][:, :, 0, 0].T)
    np.testing.assert_array_equal(b[3]["downsample"]["bn"]["var"],
                                  sd18["layer2.0.downsample.1.running_var"])
    np.testing.assert_array_equal(b[8]["bn2"]["scale"], sd18["layer4.1.bn2.weight"])
    assert "downsample" not in b[1] and "downsample" not in b[2]  # layer1: identity
    _, hf_report = P.load_into(shapes, P.convert(W.to_huggingface(sd18), 18))
    assert sorted(hf_report.loaded) == sorted(report.loaded)
    assert hf_report.unused == ["classifier.1.bias", "classifier.1.weight"]
    # classifier="head" at 1000 classes puts the ImageNet fc in jtl's head
    _, shapes1k = network_shapes("resnet18", 1000)
    p1k, r1k = P.load_into(shapes1k, P.convert(sd18, 18, classifier="head"))
    assert r1k.missing == [] and r1k.unused == []
    np.testing.assert_array_equal(p1k["head"]["kernel"], sd18["fc.weight"].T)


def test_refusals_name_the_key(sd18):
    _, shapes = network_shapes("resnet18")
    bad = dict(sd18, **{"layer3.1.conv2.weight": np.zeros((256, 255, 3, 3), np.float32)})
    with pytest.raises(JtlError, match=r"'layer3\.1\.conv2\.weight' has shape "
                                       r"\(3, 3, 255, 256\).*'backbone/blocks/6/conv2/kernel' "
                                       r"has \(3, 3, 256, 256\)"):
        P.load_into(shapes, P.convert(bad, 18), "w.safetensors")
    # another depth's file is refused by its keys: ResNet-34 has layer1.2, ResNet-50 conv3
    with pytest.raises(JtlError, match=r"layer1\.2\..*not ResNet-18 \(blocks \[2, 2, 2, 2\]\)"):
        P.convert({**sd18, "layer1.2.conv1.weight": np.zeros((64, 64, 3, 3), np.float32)}, 18)
    with pytest.raises(JtlError, match=r"layer1\.0\.conv3\.weight.*not ResNet-18"):
        P.convert({**sd18, "layer1.0.conv3.weight": np.zeros((64, 64, 1, 1), np.float32)}, 18)
    with pytest.raises(JtlError, match=r"neither torchvision's ResNet layout.*transformers'"):
        P.convert({"_conv_stem.weight": np.zeros(1)}, 18)  # an EfficientNet file


@pytest.mark.parametrize("depth", [18, 34, 50, *(pytest.param(d, marks=pytest.mark.slow)
                                                   for d in (101, 152))])  # 7 s, 17 s
def test_sizes_have_the_published_parameter_counts(depth):
    _, shapes = abstract(lambda: classifier(depth, 64))
    n = sum(int(np.prod(s.shape)) for p, s in zip(param_paths(shapes), jax.tree.leaves(shapes),
                                                   strict=True)
            if not re.search(r"/(mean|var)$", p))
    assert n == PARAMS[depth]


@pytest.mark.parametrize(("name", "blocks", "dim", "norms"),
                         [("resnet18", 9, 512, 1 + 2 + 2), ("resnet50", 17, 2048, 1 + 4 + 3)])
def test_blocks_are_addressable(name, blocks, dim, norms):
    """The composed config builds the network; blocks by index: stem, then one per residual
    block (freeze_k=3 covers stem + 2 blocks: its BN count is the stem's 1 plus theirs)."""
    cfg = compose_cfg([f"model={name}"])
    schema.validate(cfg)
    assert list(cfg.model.input_shape) == [224, 224, 3] and cfg.model.weights is None
    method = build_method({"name": "source_only"})
    net = nnx.eval_shape(lambda: build_network(
        {**OmegaConf.to_container(cfg.model), "input_shape": [32, 32, 3]}, 31, method, 0))
    assert len(net.backbone.blocks) == blocks and net.backbone.feature_dim == dim
    assert len(frozen_norms(net, "backbone/blocks/(0|1|2)/.*")) == norms
    assert all(re.search(r"/bn\d?/(mean|var)$", p) for p in stat_paths(net))
    bn = net.backbone.blocks[1].bn1
    assert (bn.momentum, bn.epsilon, bn.use_running_average) == (0.9, 1e-5, True)
    assert net.backbone.normalize == (M.IMAGENET_MEAN, M.IMAGENET_STD)

    def cut_backbone() -> M.ResNet18:
        backbone = M.ResNet18((32, 32, 3), nnx.Rngs(0))
        backbone.cut(4, (32, 32, 3))  # stem + layer1 + layer2.0: pooled 128 channels
        return backbone

    assert nnx.eval_shape(cut_backbone).feature_dim == 128


def test_model_weights_loads_both_layouts(sd18, tmp_path: Path):
    """`model.weights=` a torchvision-layout file or a transformers-layout Hugging Face
    folder: the family hook is found from the model's folder, the summary entry says what
    loaded and what is new."""
    _, shapes = network_shapes("resnet18")
    tv = tmp_path / "tv.safetensors"
    save_file(sd18, str(tv))
    hf_dir = tmp_path / "resnet-18"
    hf_dir.mkdir()
    save_file(W.to_huggingface(sd18), str(hf_dir / "model.safetensors"))
    (hf_dir / "config.json").write_text(json.dumps({"model_type": "resnet"}))
    loaded = []
    for spec in (str(tv), str(hf_dir)):
        params, entry = pretrained.load(shapes, spec, M.ResNet18)
        assert entry["loaded"] == 100 and entry["new"] == ["head/bias", "head/kernel"]
        assert entry["not_converted"] == 20
        loaded.append(params)
    assert entry["ignored"] == ["classifier.1.bias", "classifier.1.weight"]
    jax.tree.map(np.testing.assert_array_equal, loaded[0]["backbone"], loaded[1]["backbone"])
    # a ResNet-18 file for ResNet-50: its keys fit the topology, the shapes name the key
    with pytest.raises(JtlError, match=r"key 'layer1\.0\.conv1\.weight' has shape \(3, 3, 64"):
        pretrained.load(network_shapes("resnet50")[1], str(tv), M.ResNet50)
