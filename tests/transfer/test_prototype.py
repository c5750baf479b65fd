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
