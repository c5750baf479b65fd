"""model.weights: where weights come from (a file, a Hugging Face folder, hf:// through the
hub cache), the family converter found from the model's folder, what summary.json reports,
the weights' sha256 in the run's identity, and jtl's own model path on the loaded weights.

Fast tests use a random checkpoint in the lukemelas layout (`lukemelas_state_dict`) at small
inputs; the one on the real weights runs `python -m jtl.train` at 224 x 224 and is slow.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf
from PIL import Image
from safetensors.numpy import save_file

from jtl import inputs, rundir, schema
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.models import pretrained
from jtl.models.efficientnet_lite import modeling as M
from jtl.models.efficientnet_lite import params as P
from jtl.models.lenet import LeNet
from jtl.train.build import initial_params, load_roles, network, weights_summary
from tests.conftest import ROOT, compose_cfg
from tests.models.test_efficientnet_lite import (
    REFERENCE,
    WEIGHTS,
    lukemelas_state_dict,
    needs_shared,
)

NEW = ["head/bias", "head/kernel"]


def tame(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A random checkpoint at He-init scale with near-identity BatchNorms, so activations stay
    inside ReLU6's linear range (N(0, 1) weights saturate every unit at 0 or 6, where float
    order alone flips outputs)."""
    out = {}
    for k, v in sd.items():
        if k.endswith("conv.weight") or k.endswith("_conv_stem.weight") or k.endswith(
                "_conv_head.weight"):
            v = v * np.float32(np.sqrt(1.0 / np.prod(v.shape[1:])))
        elif k.endswith((".weight", ".running_var")) and v.ndim == 1:
            v = np.float32(1.0) + np.float32(0.1) * (v if k.endswith(".weight") else v - 1.25)
        elif k.endswith((".bias", ".running_mean")) and not k.startswith("_fc"):
            v = np.float32(0.1) * v
        out[k] = v.astype(sd[k].dtype)
    return out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "lite0.safetensors"
    save_file(tame(lukemelas_state_dict(seed=3)), str(path))
    return path


def test_weights_file_forms(ckpt: Path, tmp_path: Path):
    assert pretrained.weights_file(str(ckpt)) == ckpt
    hf = tmp_path / "hf_layout"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    with pytest.raises(JtlError, match=r"a folder without model\.safetensors"):
        pretrained.weights_file(str(hf))
    (hf / "model.safetensors").symlink_to(ckpt)
    assert pretrained.weights_file(str(hf)) == hf / "model.safetensors"
    with pytest.raises(JtlError, match="no such file or folder"):
        pretrained.weights_file(str(tmp_path / "nope.safetensors"))
    with pytest.raises(JtlError, match=r"write hf://<org>/<name>"):
        pretrained.weights_file("hf://just-a-name")


def test_hub_ids_come_from_the_cache_and_fail_offline_in_one_line(
        ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(JtlError, match=r"not in the Hugging Face cache .* HF_HUB_OFFLINE is set"
                                       r"\)\. Online, run `hf download timm/lite0 model"):
        pretrained.weights_file("hf://timm/lite0")
    # the hub cache's layout: refs/main names the snapshot holding the file
    repo = tmp_path / "hub" / "models--timm--lite0"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    (repo / "snapshots" / ("a" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("a" * 40) / "model.safetensors").symlink_to(ckpt)
    found = pretrained.weights_file("hf://timm/lite0")
    assert found.name == "model.safetensors" and found.resolve() == ckpt.resolve()


def test_a_model_without_a_family_converter_is_one_line():
    with pytest.raises(JtlError, match="model LeNet has no checkpoint converter"):
        pretrained.converter(LeNet)
    assert pretrained.converter(M.EfficientNetLite0) is P


def _abstract_params(classes: int = 31):
    net = nnx.eval_shape(lambda: build_cfg_network(classes))
    return nnx.split(net)[1].to_pure_dict()


def build_cfg_network(classes: int):
    from jtl.methods import build_method
    from jtl.models import build_network

    return build_network({"name": "efficientnet_lite0", "input_shape": [32, 32, 3],
                          "weights": None}, classes, build_method({"name": "source_only"}), 0)


def test_load_reports_loaded_new_and_ignored(ckpt: Path):
    _, report = pretrained.load(_abstract_params(), str(ckpt), M.EfficientNetLite0)
    assert report == {"path": str(ckpt), "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
                      "loaded": 245, "new": NEW, "ignored": ["_fc.bias", "_fc.weight"],
                      "not_converted": 49}


def test_shape_mismatch_names_the_key(tmp_path: Path):
    sd = lukemelas_state_dict()
    sd["_conv_stem.weight"] = np.zeros((16, 3, 3, 3), np.float32)
    save_file(sd, str(tmp_path / "w.safetensors"))
    with pytest.raises(JtlError, match=r"checkpoint key '_conv_stem\.weight' has shape "
                                       r"\(3, 3, 3, 16\) after conversion, the model's "
                                       r"'backbone/blocks/0/conv/kernel' has \(3, 3, 3, 32\)"):
        pretrained.load(_abstract_params(), str(tmp_path / "w.safetensors"), M.EfficientNetLite0)


def write_tree(root: Path, images: np.ndarray, labels: list[int]) -> None:
    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        (root / f"class{y}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"class{y}" / f"{i}.png")


def run_overrides(root: Path, weights: Path, side: int) -> list[str]:
    """A run on one image folder as source and target, scored on all of it."""
    dom = [f"root={root}", "test=all", f"storage_size={side}", "val_fraction=0"]
    return ["model=efficientnet_lite0", f"model.weights={weights}",
            f"model.input_shape=[{side},{side},3]", "domain@source=imagefolder",
            "domain@target=imagefolder", *(f"{r}.{d}" for r in ("source", "target") for d in dom)]


def test_initial_params_hold_the_converted_backbone(ckpt: Path, tmp_path: Path):
    """The run's initial parameters (build's `initial_params`) hold the backbone exactly as the
    family's `load_pretrained` fills the raw module (the parity test's path), the head stays
    fresh, the summary entry says so, and the domain's pipeline feeds the network the parity
    test's input, (pixels - 127) / 128. (Shapes only: a real init of the network costs ~8 s
    of eager compilation; the slow test below runs it all.)"""
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    write_tree(tmp_path / "tree", images, [0, 1, 0, 1])
    cfg = compose_cfg([*run_overrides(tmp_path / "tree", ckpt, 32),
                       f"paths.tfds_dir={tmp_path / 'cache'}"])
    cfg = inputs.record(OmegaConf.to_container(cfg, resolve=True))
    schema.validate(cfg)
    assert cfg["inputs"]["model.weights"] == "sha256:" + hashlib.sha256(
        ckpt.read_bytes()).hexdigest()
    roles, method = load_roles(cfg), build_method(cfg["method"])
    target = roles.target
    net = nnx.eval_shape(lambda: network(cfg, target.num_classes, method, (32, 32, 3)))
    params = initial_params(cfg, target, method, net)
    assert weights_summary(cfg, params)["weights"]["new"] == NEW
    raw, _ = P.load_pretrained(ckpt, nnx.split(nnx.eval_shape(lambda: M.ImageNetClassifier(
        M.EfficientNetLite0((32, 32, 3), nnx.Rngs(0)), nnx.Rngs(0))))[1].to_pure_dict())
    jax.tree_util.tree_map(np.testing.assert_array_equal, params["backbone"], raw["backbone"])
    assert isinstance(params["head"]["kernel"], jax.ShapeDtypeStruct)  # untouched: fresh
    np.testing.assert_allclose(target.test.x, M.normalize(target.test.stored), atol=1e-6,
                               rtol=0)


def test_weights_are_part_of_the_identity(ckpt: Path, tmp_path: Path):
    base = OmegaConf.to_container(compose_cfg(["model=efficientnet_lite0"]), resolve=True)
    assert base["model"]["weights"] is None and inputs.record(base) == base
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(ckpt.read_bytes())
    cfg = inputs.record({**base, "model": {**base["model"], "weights": str(copy)}})
    assert cfg["model"]["weights"] == str(copy) and "model.weights" in cfg["inputs"]
    assert rundir.fingerprint(cfg) != rundir.fingerprint(base)
    inputs.verify(cfg)
    sd = lukemelas_state_dict(seed=4)
    save_file(sd, str(copy))
    with pytest.raises(JtlError, match=r"model\.weights=.* changed since this run recorded it"):
        inputs.verify(cfg)


def test_schema_and_recipes_take_weights():
    cfg = compose_cfg(["model=efficientnet_lite0", "model.weights=/w.safetensors",
                       "transfer=feature_extractor"])
    schema.validate(cfg)  # a recipe needs something to transfer from: the weights are it
    from jtl.transfer import Recipe

    Recipe.from_cfg(cfg.transfer).check_init(cfg)
    with pytest.raises(JtlError, match=r"model\.weights"):
        schema.validate(compose_cfg(["model=efficientnet_lite0", "model.weights=3"]))
    with pytest.raises(JtlError, match="weights"):
        schema.validate(compose_cfg(["model=lenet", "+model.weights=/w.safetensors"]))


@needs_shared
@pytest.mark.slow  # EfficientNet-Lite0 at 224 x 224: two compilations, ~60 s on 2 cores
def test_cli_run_on_the_published_weights_matches_the_reference(tmp_path: Path):
    """`python -m jtl.train model=efficientnet_lite0 model.weights=<shared file>` on a folder
    of the 4 reference crops: the run loads the weights (its log and summary say so), and its
    pooled features through `load_run` equal the PyTorch reference within 1e-4 (measured
    4.5e-6). A frozen backbone (feature_extractor) keeps the checkpoint's values."""
    import jtl

    ref = np.load(REFERENCE)
    write_tree(tmp_path / "tree", ref["images_uint8"], [0, 1, 2, 3])
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "jtl.train", *run_overrides(tmp_path / "tree", WEIGHTS, 224),
           "transfer=feature_extractor", "trainer.steps=1", "trainer.batch_size=4",
           "trainer.eval_every=1", "trainer.checkpoint_every=1", "trainer.progress=false",
           f"paths.tfds_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    log = (run_dir / "train.log").read_text()
    assert "loaded 245 arrays; new: head/bias, head/kernel; ignored: _fc.bias, _fc.weight" in log
    summary = json.loads((run_dir / "summary.json").read_text())
    run = jtl.load_run(run_dir)
    entry = weights_summary(run.cfg, run.initial_params())["weights"]
    assert entry["loaded"] == 245 and entry["new"] == NEW
    assert entry["sha256"] == "8cee8ab090c69e3c7fe3228d1d75599a807502a0f88d1900f4abf69a306246e3"
    assert summary["weights"] == entry
    features = run.features("target", "test")
    np.testing.assert_allclose(features, ref["features"], atol=1e-4, rtol=1e-4)
