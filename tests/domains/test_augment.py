"""The pipeline's in-step image ops (jtl/domains/pp.py). SimCLR's views (`Distort`): shapes,
value range, determinism for a fixed key, and that each transform does what it says (identity
settings give the image back). TLlib's ImageNet transforms: resize, random resized crop and
centre crop to the model's size, in training and evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtl import rundir, schema
from jtl.domains.pp import Distort, Pipeline, center_crop, check_pp, crop
from jtl.errors import JtlError
from tests.conftest import compose_cfg

IDENTITY = Distort(min_scale=1.0, max_ratio=1.0, max_degrees=0.0, contrast=0.0, noise_std=0.0)


@pytest.fixture(scope="module")
def images():
    return jnp.asarray(np.random.default_rng(0).uniform(size=(5, 12, 12, 2)), jnp.float32)


@pytest.fixture(scope="module")
def augment():
    return jax.jit(Distort().__call__)


def test_shape_range_and_determinism(images, augment):
    a, b = augment(jax.random.key(3), images), augment(jax.random.key(3), images)
    assert a.shape == images.shape and a.dtype == images.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c = augment(jax.random.key(4), images)
    assert float(jnp.abs(a - c).max()) > 0.1  # another key, other views


def test_images_of_a_batch_get_their_own_transform(augment):
    same = jnp.tile(jnp.asarray(np.random.default_rng(1).uniform(size=(1, 12, 12, 1)),
                                jnp.float32), (4, 1, 1, 1))
    out = np.asarray(augment(jax.random.key(0), same))
    assert all(np.abs(out[0] - out[i]).max() > 0.05 for i in range(1, 4))


def test_identity_settings_give_the_image_back(images):
    np.testing.assert_allclose(np.asarray(jax.jit(IDENTITY.__call__)(jax.random.key(0), images)),
                               np.asarray(images), atol=1e-5)


def test_rotation_by_itself_keeps_the_centre_and_moves_the_rest():
    x = jnp.zeros((1, 9, 9, 1)).at[0, 4, :, 0].set(1.0)  # a horizontal bar through the centre
    rot = Distort(min_scale=1.0, max_ratio=1.0, max_degrees=90.0, contrast=0.0, noise_std=0.0)
    out = np.asarray(jax.jit(rot.__call__)(jax.random.key(0), x))[0, ..., 0]
    assert out[4, 4] == pytest.approx(1.0, abs=1e-5)
    assert np.abs(out - np.asarray(x[0, ..., 0])).max() > 0.3


def test_crop_zooms_in():
    # A centred square grows under a crop (resized back to the full image).
    x = jnp.zeros((1, 16, 16, 1)).at[0, 6:10, 6:10, 0].set(1.0)
    crop = Distort(min_scale=0.25, max_ratio=1.0, max_degrees=0.0, contrast=0.0, noise_std=0.0)
    out = jax.jit(crop.__call__)(jax.random.key(1), x)
    assert float(out.sum()) > float(x.sum())


def test_tllib_imagenet_pipeline_resizes_then_crops_to_the_model_size():
    """resize to 12x12, then training: a random resized crop to the model's 8x8 (+ flip);
    evaluation: the central 8x8 of the 12x12 image (torchvision's offsets, round(4 / 2) = 2)."""
    x = np.random.default_rng(0).integers(0, 256, (3, 20, 16, 3), dtype=np.uint8)
    pp = Pipeline("image", (8, 8, 3), augment=("crop", "flip"), resize=12,
                  eval_ops=("center_crop",))
    evaluated = np.asarray(jax.jit(lambda f: pp(f))({"image": x}))
    resized = np.asarray(jax.jit(lambda f: Pipeline("image", (12, 12, 3))(f))({"image": x}))
    np.testing.assert_array_equal(evaluated, resized[:, 2:10, 2:10])
    trained = np.asarray(jax.jit(lambda f, k: pp(f, k))({"image": x}, jax.random.key(0)))
    assert trained.shape == (3, 8, 8, 3) and trained.min() >= 0.0 and trained.max() <= 1.0
    assert not np.allclose(trained, evaluated)


def test_center_crop_offsets_are_torchvision_s():
    x = jnp.arange(13 * 13, dtype=jnp.float32).reshape(1, 13, 13, 1)
    out = center_crop(x, (8, 8))  # (13 - 8) / 2 = 2.5 rounds to 2, as int(round(2.5))
    np.testing.assert_array_equal(out, x[:, 2:10, 2:10])


def test_crop_to_another_size_and_to_its_own():
    x = jnp.asarray(np.random.default_rng(2).uniform(size=(4, 12, 12, 1)), jnp.float32)
    assert crop(x, jax.random.key(0), (8, 8)).shape == (4, 8, 8, 1)
    np.testing.assert_array_equal(crop(x, jax.random.key(0)),
                                  crop(x, jax.random.key(0), (12, 12)))


@pytest.mark.parametrize(("pp", "augment", "match"), [
    ({"resize": 256, "eval_ops": ["center_crop"]}, ["flip"], "training needs augment"),
    ({"resize": 256}, ["crop", "flip"], "evaluation pp.eval_ops"),
    ({"eval_ops": ["center_crop"]}, [], "set pp.resize"),
    ({"resize": 200, "eval_ops": ["center_crop"]}, ["crop"], "below the model's 224x224"),
    ({"resize": 256, "eval_ops": ["resize"]}, ["crop"], "unknown"),
    ({"size": 256}, [], "pp has no key"),
])
def test_pp_is_checked(pp, augment, match):
    with pytest.raises(JtlError, match=match):
        check_pp(pp, augment, (224, 224, 3))


def test_tllib_imagenet_config_is_unused_by_default():
    assert compose_cfg([])["pp"] is None and "pp" not in rundir.identity(compose_cfg([]))
    cfg = compose_cfg(["pp=tllib_imagenet", "model=efficientnet_lite0"])
    schema.validate(cfg)
    assert list(cfg["augment"]) == ["crop", "flip"]
    assert check_pp(cfg["pp"], cfg["augment"], cfg["model"]["input_shape"]) == {
        "resize": 256, "eval_ops": ("center_crop",)}
