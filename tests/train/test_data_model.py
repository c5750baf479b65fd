"""The data model's seams (issue 20): stored fields and the in-step pipeline, a features
domain, several sources, a statistics-only source-free method (AdaBN)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl.domains.base import to_input_shape, to_unit
from jtl.domains.pp import Pipeline, check_augment
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.methods.adabn import target_statistics
from jtl.models import build_network
from jtl.models.base import param_paths
from jtl.train import train_and_evaluate
from jtl.train.build import load_roles
from jtl.train.checkpoint import manager
from jtl.train.data import prepare
from tests.conftest import compose_cfg


def final_params(run_dir):
    with manager(run_dir / "checkpoints") as m:
        return m.restore(m.latest_step())["params"]

AMAZON = ["domain@source=amazon_books", "domain@target=amazon_kitchen", "model=mlp",
          "model.hidden=[32]", "trainer=debug", "trainer.progress=false",
          "trainer.tensorboard=false", "trainer.steps=60", "trainer.eval_every=60",
          "trainer.checkpoint_every=60", "trainer.log_every=60"]


def test_pipeline_reads_uint8_as_the_host_did_bit_for_bit():
    """uint8 images stored as they are; the step's pipeline gives the pixels the host's eager
    scaling and resize gave (so digits runs reproduce), also after a resize."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
    for shape in [(16, 16, 1), (28, 28, 1), (32, 32, 3)]:
        host = to_input_shape(to_unit(x, (0.0, 255.0)), shape)
        dev = np.asarray(jax.jit(lambda f, s=shape: Pipeline("image", s)(f))({"image": x}))
        np.testing.assert_allclose(dev, host, atol=1e-6 if shape[0] != 16 else 0)
    assert x.nbytes * 4 == to_unit(x, (0.0, 255.0)).nbytes  # the memory figure: 4x


def test_pipeline_normalises_and_augments_only_with_a_key():
    x = np.full((4, 8, 8, 3), 255, np.uint8)
    x[:, :, :4] = 0  # left half black
    pp = Pipeline("image", (8, 8, 3), mean=(0.5,) * 3, std=(0.25,) * 3, augment=("flip",))
    plain = np.asarray(pp({"image": x}))
    np.testing.assert_allclose(plain[0, 0, 0], -2.0)  # (0 - 0.5) / 0.25
    flipped = np.asarray(pp({"image": x}, jax.random.key(3)))
    for i in range(4):  # each image as it is or mirrored left-right
        assert (flipped[i] == plain[i]).all() or (flipped[i] == plain[i][:, ::-1]).all()
    assert (flipped != plain).any()
    crop = Pipeline("image", (8, 8, 3), augment=("crop",))({"image": x}, jax.random.key(0))
    assert crop.shape == (4, 8, 8, 3)
    with pytest.raises(JtlError, match="unknown"):
        check_augment(["rotate"])


def test_several_groups_of_a_role_concatenate_with_domain_ids():
    pp = Pipeline("features")
    raw = {"source.0": {"features": jnp.zeros((3, 2)), "label": jnp.zeros(3, jnp.int32)},
           "source.1": {"features": jnp.ones((3, 2)), "label": jnp.ones(3, jnp.int32)},
           "target": {"features": jnp.ones((3, 2))}}
    batch = prepare(raw, {k: pp for k in raw}, jax.random.key(0))
    assert batch["source"]["x"].shape == (6, 2) and "y" not in batch["target"]
    np.testing.assert_array_equal(batch["source"]["domain"], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(batch["source"]["y"], batch["source"]["domain"])


def test_features_domain_and_the_model_that_reads_it(tmp_path):
    """DANN's Amazon count vectors as a features domain: the MLP reads them at their own
    width (5000), LeNet is refused in one line naming both, and a short run learns."""
    cfg = compose_cfg(AMAZON)
    roles = load_roles(cfg)
    x = roles.source.train.fields["features"]
    assert x.dtype == np.float32 and x.shape[1] == 5000 and roles.target.num_classes == 2
    assert len(roles.target.test) == 5945
    with pytest.raises(JtlError, match="amazon_mdsd' holds features and model 'lenet'"):
        load_roles(compose_cfg([*(o for o in AMAZON if "model" not in o), "model=lenet"]))
    s = train_and_evaluate(cfg, tmp_path / "run")
    assert s["source"] == "amazon_mdsd" and s["target/test/accuracy"] > 0.65


def test_several_sources_train_one_head_and_report_each(tmp_path):
    """`sources=[mnist, usps]` -> sklearn digits: ERM on equal per-source shares; each
    source scored, source/val the mean (DomainBed's training-domain validation)."""
    cfg = compose_cfg([
        "sources=[{name: mnist, max_train: 600}, {name: usps, max_train: 600}]",
        "domain@target=sklearn_digits", "model=mlp", "model.hidden=[64]", "trainer=debug",
        "trainer.progress=false", "trainer.tensorboard=false"])
    s = train_and_evaluate(cfg, tmp_path / "run")
    assert s["source"] == "mnist+usps"
    for k in ("source.0/val/accuracy", "source.1/val/accuracy", "source/val/accuracy"):
        assert k in s
    assert s["source/val/accuracy"] == pytest.approx(
        (s["source.0/val/accuracy"] + s["source.1/val/accuracy"]) / 2)
    saved = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "source: null" in saved and "max_train: 600" in saved  # sources written out
    assert s["source.1/test/accuracy"] > 0.3  # usps was trained on, not only mnist


def test_several_sources_by_bare_name_train_as_vmapped_seeds(tmp_path):
    """Sources named by name alone (not mappings) reach every lane of `trainer.seeds` as
    full domain configs."""
    cfg = compose_cfg(["sources=[sklearn_digits, {name: sklearn_digits, shifts: [invert]}]",
                       "domain@target=sklearn_digits", "model=mlp", "model.hidden=[16]",
                       "trainer=debug", "trainer.progress=false", "trainer.tensorboard=false",
                       "trainer.seeds=[0,1]"])
    out = train_and_evaluate(cfg, tmp_path / "seeds")
    assert sorted(out["runs"]) == [0, 1]
    assert all("source.1/val/accuracy" in r for r in out["runs"].values())


def test_adabn_statistics_are_the_target_moments():
    """After AdaBN the first BatchNorm's running mean/var are its input's moments over the
    whole split (exactly, across batches of unequal size)."""
    method = build_method({"name": "adabn", "batch_size": 7})
    net = build_network({"name": "mlp", "input_shape": [6], "hidden": [5], "norm": "batch"},
                        3, method, 0)
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(30, 6)) * 3 + 2).astype(np.float32)
    from jtl.domains import Split

    split = Split({"features": x, "label": np.zeros(30, np.int32)}, Pipeline("features"))
    out = target_statistics(graphdef, params, split, batch_size=7)
    lin = params["backbone"]["blocks"][0]["linear"]
    h = x @ np.asarray(lin["kernel"]) + np.asarray(lin["bias"])
    bn = out["backbone"]["blocks"][0]["norm"]
    np.testing.assert_allclose(bn["mean"], h.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn["var"], h.var(0), rtol=1e-4, atol=1e-4)
    assert not np.allclose(params["backbone"]["blocks"][0]["norm"]["mean"], bn["mean"])


def test_adabn_is_a_source_free_statistics_only_run(tmp_path):
    """From a source run: no source domain, no gradient step, only BN statistics change."""
    base = ["domain@target=sklearn_digits", "model=mlp", "model.hidden=[32]",
            "model.norm=batch", "trainer=debug", "trainer.progress=false",
            "trainer.tensorboard=false"]
    src = tmp_path / "source"
    train_and_evaluate(compose_cfg([*base, "domain@source=sklearn_digits",
                                    "target.shifts=[invert]"]), src)
    cfg = compose_cfg([*base, "method=adabn", "source=null", f"init_from={src}",
                       "target.shifts=[invert]"])
    s = train_and_evaluate(cfg, tmp_path / "adabn")
    assert s["status"] == "completed" and s["source"] is None and "head" not in s
    assert not any(k.startswith("source/") for k in s)
    before, after = final_params(src), final_params(tmp_path / "adabn")
    for path, a, b in zip(param_paths(before), jax.tree_util.tree_leaves(before),
                          jax.tree_util.tree_leaves(after), strict=True):
        same = np.array_equal(np.asarray(a), np.asarray(b))
        assert same != path.endswith(("/mean", "/var")), path  # only BN statistics change
    rows = [json.loads(r) for r in (tmp_path / "adabn" / "metrics.jsonl").read_text().splitlines()]
    assert not any(k.startswith("train/") for r in rows for k in r)  # no gradient step
    with pytest.raises(JtlError, match="source-free"):
        train_and_evaluate(compose_cfg([*base, "source=null", f"init_from={src}"]),
                           tmp_path / "bad")
