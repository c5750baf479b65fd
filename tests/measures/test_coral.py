"""coral_distance against an explicit-loop numpy reference, and its invariances."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jtl.measures.coral import coral_distance, covariance


def reference(x: np.ndarray, y: np.ndarray) -> float:
    def cov(a: np.ndarray) -> np.ndarray:
        n, d = a.shape
        mu = [sum(a[k, i] for k in range(n)) / n for i in range(d)]
        c = np.zeros((d, d))
        for i in range(d):
            for j in range(d):
                c[i, j] = sum((a[k, i] - mu[i]) * (a[k, j] - mu[j]) for k in range(n)) / (n - 1)
        return c

    cx, cy = cov(np.asarray(x, np.float64)), cov(np.asarray(y, np.float64))
    d = x.shape[1]
    return sum((cx[i, j] - cy[i, j]) ** 2 for i in range(d) for j in range(d)) / (4 * d * d)


def arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = (rng.normal(size=(6, 3)) @ np.array([[1.0, 0.5, 0], [0, 2.0, 0], [0, 0, 0.3]])).astype(
        np.float32
    )
    return x, y


def test_matches_loop_reference():
    x, y = arrays()
    np.testing.assert_allclose(coral_distance(x, y), reference(x, y), rtol=1e-5)
    np.testing.assert_allclose(covariance(jnp.asarray(x)), np.cov(x, rowvar=False), rtol=1e-5)


def test_zero_for_identical_and_for_pure_mean_shift():
    x, _ = arrays()
    np.testing.assert_allclose(coral_distance(x, x), 0.0, atol=1e-12)
    # CORAL compares covariances only: shifting every sample by a constant changes nothing.
    np.testing.assert_allclose(coral_distance(x, x + 5.0), 0.0, atol=1e-9)


def test_grows_with_scale_change():
    x, _ = arrays()
    vals = [float(coral_distance(x, s * x)) for s in (1.0, 1.5, 2.0, 4.0)]
    assert vals[0] < 1e-12 and vals[0] < vals[1] < vals[2] < vals[3]


def test_differentiable_and_jittable():
    x, y = (jnp.asarray(a) for a in arrays())
    g = jax.jit(jax.grad(coral_distance))(x, y)
    assert np.all(np.isfinite(g)) and float(jnp.abs(g).sum()) > 0
    np.testing.assert_allclose(jax.jit(coral_distance)(x, y), coral_distance(x, y), rtol=1e-5)
