"""The prototype head: nearest class mean as a linear layer."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.models.base import prototype_head


def test_prototype_head_is_the_nearest_class_mean_classifier():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(12, 4)).astype(np.float32)
    labels = np.arange(12) % 3
    head = prototype_head(jnp.asarray(feats), jnp.asarray(labels), 3)
    means = np.stack([feats[labels == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(head["kernel"], means.T, rtol=1e-6)
    queries = rng.normal(size=(50, 4)).astype(np.float32)
    nearest = np.argmin(((queries[:, None] - means[None]) ** 2).sum(-1), axis=1)
    logits = queries @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
    np.testing.assert_array_equal(logits.argmax(1), nearest)


def test_a_class_without_examples_is_a_user_error():
    with pytest.raises(JtlError, match=r"classes \[2\]"):
        prototype_head(jnp.ones((2, 3)), jnp.array([0, 1]), 3)


def test_cosine_prototype_is_the_nearest_normalised_mean_by_cosine():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(9, 4)).astype(np.float32) * rng.uniform(0.1, 10, (9, 1))
    labels = np.arange(9) % 3
    head = prototype_head(jnp.asarray(feats), jnp.asarray(labels), 3, "cosine")
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    means = np.stack([unit[labels == c].mean(0) for c in range(3)])
    queries = rng.normal(size=(50, 4)).astype(np.float32) * 100.0  # scale must not matter
    cos = (queries @ means.T) / np.linalg.norm(queries, axis=1)[:, None] / np.linalg.norm(
        means, axis=1)[None]
    logits = queries @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
    np.testing.assert_array_equal(logits.argmax(1), cos.argmax(1))
    with pytest.raises(JtlError, match="use one of"):
        prototype_head(jnp.asarray(feats), jnp.asarray(labels), 3, "manhattan")


def test_cl2n_prototype_is_the_nearest_mean_by_cosine_after_centring():
    rng = np.random.default_rng(2)
    center = rng.normal(size=4).astype(np.float32) * 5.0  # far from 0: centring must matter
    feats = center + rng.normal(size=(9, 4)).astype(np.float32)
    labels = np.arange(9) % 3
    head = prototype_head(jnp.asarray(feats), jnp.asarray(labels), 3, "cl2n", jnp.asarray(center))
    unit = (feats - center) / np.linalg.norm(feats - center, axis=1, keepdims=True)
    means = np.stack([unit[labels == c].mean(0) for c in range(3)])
    queries = center + rng.normal(size=(200, 4)).astype(np.float32)
    c = queries - center
    cos = (c @ means.T) / np.linalg.norm(c, axis=1)[:, None] / np.linalg.norm(means, axis=1)
    logits = queries @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
    np.testing.assert_array_equal(logits.argmax(1), cos.argmax(1))
    # without the centre the plain cosine head decides otherwise on some of these queries
    plain = prototype_head(jnp.asarray(feats), jnp.asarray(labels), 3, "cosine")
    assert np.any((queries @ np.asarray(plain["kernel"])).argmax(1) != cos.argmax(1))
    with pytest.raises(JtlError, match="takes a center"):
        prototype_head(jnp.asarray(feats), jnp.asarray(labels), 3, "cl2n")
    with pytest.raises(JtlError, match="take none"):
        prototype_head(jnp.asarray(feats), jnp.asarray(labels), 3, "cosine", jnp.zeros(4))
