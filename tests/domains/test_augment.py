"""SimCLR's augmentations: shapes, value range, determinism for a fixed key, and that each
transform does what it says (identity settings give the image back)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtl.domains.augment import Augment

IDENTITY = Augment(min_scale=1.0, max_ratio=1.0, max_degrees=0.0, contrast=0.0, noise_std=0.0)


@pytest.fixture(scope="module")
def images():
    return jnp.asarray(np.random.default_rng(0).uniform(size=(5, 12, 12, 2)), jnp.float32)


@pytest.fixture(scope="module")
def augment():
    return jax.jit(Augment().__call__)


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
    rot = Augment(min_scale=1.0, max_ratio=1.0, max_degrees=90.0, contrast=0.0, noise_std=0.0)
    out = np.asarray(jax.jit(rot.__call__)(jax.random.key(0), x))[0, ..., 0]
    assert out[4, 4] == pytest.approx(1.0, abs=1e-5)
    assert np.abs(out - np.asarray(x[0, ..., 0])).max() > 0.3


def test_crop_zooms_in():
    # A centred square grows under a crop (resized back to the full image).
    x = jnp.zeros((1, 16, 16, 1)).at[0, 6:10, 6:10, 0].set(1.0)
    crop = Augment(min_scale=0.25, max_ratio=1.0, max_degrees=0.0, contrast=0.0, noise_std=0.0)
    out = jax.jit(crop.__call__)(jax.random.key(1), x)
    assert float(out.sum()) > float(x.sum())
