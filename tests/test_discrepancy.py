"""The discrepancy math (MK-MMD, CORAL) against explicit-loop numpy references, and the
estimators' behaviour."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtl.discrepancy import coral_distance, covariance, mk_mmd


def mmd_reference(x: np.ndarray, y: np.ndarray, mul: float = 2.0, num: int = 5,
              bandwidth: float | None = None) -> float:
    """Unbiased MK-MMD^2 written out pair by pair."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if bandwidth is None:
        z = np.concatenate([x, y])
        total, pairs = 0.0, 0
        for i in range(len(z)):
            for j in range(len(z)):
                if i != j:
                    total += np.sum((z[i] - z[j]) ** 2)
                    pairs += 1
        bandwidth = total / pairs

    def k(a: np.ndarray, b: np.ndarray) -> float:
        d = np.sum((a - b) ** 2)
        return sum(np.exp(-d / (bandwidth * mul ** (i - num // 2))) for i in range(num))

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 3)).astype(np.float32), rng.normal(1.0, 1.5, (5, 3)).astype(
        np.float32
    )


@pytest.mark.parametrize(("mul", "num", "bw"), [(2.0, 5, None), (3.0, 3, None), (2.0, 1, 4.0)])
def test_mmd_matches_loop_reference(xy, mul, num, bw):
    x, y = xy
    got = mk_mmd(jnp.asarray(x), jnp.asarray(y), mul, num, bw)
    np.testing.assert_allclose(got, mmd_reference(x, y, mul, num, bw), rtol=1e-4, atol=1e-6)


def test_mmd_identical_batch_gives_the_unbiased_offset(xy):
    # y = x: the cross term keeps k(x_i, x_i) = K, the within terms drop it, so the unbiased
    # estimate is -2 (K - kbar) / m <= 0 rather than 0; it vanishes as m grows.
    x, _ = xy
    m, num = len(x), 5
    got = float(mk_mmd(jnp.asarray(x), jnp.asarray(x), 2.0, num))
    z = np.asarray(x, np.float64)
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    bw = d.sum() * 4 / ((2 * m) * (2 * m - 1))  # pooled [x; x]: cross pairs count twice
    k = sum(np.exp(-d / (bw * 2.0 ** (i - num // 2))) for i in range(num))
    kbar = (k.sum() - np.trace(k)) / (m * (m - 1))
    np.testing.assert_allclose(got, -2 * (num - kbar) / m, rtol=1e-4)
    assert got <= 0


def test_mmd_same_distribution_near_zero_and_grows_with_mean_shift():
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.normal(size=(300, 4)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(300, 4)), jnp.float32)
    same = float(mk_mmd(a, b))
    shifts = [float(mk_mmd(a, b + s)) for s in (0.25, 0.5, 1.0, 2.0)]
    assert abs(same) < 0.01
    assert same < shifts[0] < shifts[1] < shifts[2] < shifts[3]


def test_mmd_bandwidth_is_not_differentiated(xy):
    # Default bandwidth is under stop_gradient: the gradient equals that with h held fixed.
    x, y = (jnp.asarray(a) for a in xy)
    z = jnp.concatenate([x, y])
    d = jnp.sum((z[:, None] - z[None]) ** 2, -1)
    h = d.sum() / (len(z) * (len(z) - 1))
    g_default = jax.jit(jax.grad(mk_mmd))(x, y)
    g_fixed = jax.jit(jax.grad(lambda u: mk_mmd(u, y, bandwidth=h)))(x)
    np.testing.assert_allclose(g_default, g_fixed, rtol=1e-4, atol=1e-6)
    assert np.all(np.isfinite(g_default)) and float(jnp.abs(g_default).sum()) > 0


def test_mmd_jit_and_too_few_samples(xy):
    x, y = xy
    np.testing.assert_allclose(jax.jit(mk_mmd)(x, y), mk_mmd(x, y), rtol=1e-5)
    with pytest.raises(ValueError):
        mk_mmd(x[:1], y)


def coral_reference(x: np.ndarray, y: np.ndarray) -> float:
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


def test_coral_matches_loop_reference():
    x, y = arrays()
    np.testing.assert_allclose(coral_distance(x, y), coral_reference(x, y), rtol=1e-5)
    np.testing.assert_allclose(covariance(jnp.asarray(x)), np.cov(x, rowvar=False), rtol=1e-5)


def test_coral_zero_for_identical_and_for_pure_mean_shift():
    x, _ = arrays()
    np.testing.assert_allclose(coral_distance(x, x), 0.0, atol=1e-12)
    # CORAL compares covariances only: shifting every sample by a constant changes nothing.
    np.testing.assert_allclose(coral_distance(x, x + 5.0), 0.0, atol=1e-9)


def test_coral_grows_with_scale_change():
    x, _ = arrays()
    vals = [float(coral_distance(x, s * x)) for s in (1.0, 1.5, 2.0, 4.0)]
    assert vals[0] < 1e-12 and vals[0] < vals[1] < vals[2] < vals[3]


def test_coral_differentiable_and_jittable():
    x, y = (jnp.asarray(a) for a in arrays())
    g = jax.jit(jax.grad(coral_distance))(x, y)
    assert np.all(np.isfinite(g)) and float(jnp.abs(g).sum()) > 0
    np.testing.assert_allclose(jax.jit(coral_distance)(x, y), coral_distance(x, y), rtol=1e-5)
