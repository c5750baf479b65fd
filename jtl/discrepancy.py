"""Distances between two samples' distributions, in jnp: the math of the `mmd` and `coral`
methods (as losses) and of the `mmd` and `coral` measures (on a trained run's features).

One module below both so that the loss a method minimises and the number a measure reports
are the same function.

MK-MMD (DAN, Long et al. 2015). With a characteristic kernel k,
MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y) is zero iff P = Q. DAN sums Gaussian
kernels at geometrically spaced bandwidths so that no single bandwidth has to be tuned:

    k(a, b) = sum_{i=0}^{K-1} exp(-||a - b||^2 / h_i),   h_i = h * mul^(i - K // 2).

The unbiased estimator drops the i = j terms of the within-domain sums:

    MMD_u^2 = sum_{i!=j} k(x_i, x_j) / (m (m-1)) + sum_{i!=j} k(y_i, y_j) / (n (n-1))
              - 2 sum_{i,j} k(x_i, y_j) / (m n).

It is zero *in expectation* for two samples of one distribution, so single estimates can be
slightly negative. For the *same* batch on both sides (y = x) it is exactly
-2 (K - kbar) / m <= 0, where kbar is the mean off-diagonal kernel value: the cross term keeps
its diagonal k(x_i, x_i) = K, the within terms do not. That goes to 0 as m grows.

CORAL (Sun & Saenko 2016). How far apart two samples' second-order statistics are:

    coral(X, Y) = ||C_X - C_Y||_F^2 / (4 d^2),
    C_X = (X^T X - (1^T X)^T (1^T X) / n) / (n - 1)   (unbiased covariance, d x d).

Zero when the covariances agree; blind to a pure mean shift by design (Deep CORAL aligns
correlations, not means). The 1 / (4 d^2) is the paper's; it makes the value small for wide
features (d = 500: 1e-6 times the squared Frobenius norm), which is why the `coral` method
applies it to the logits by default, as the paper does.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _rows(x: jax.Array) -> jax.Array:
    """(n, ...) -> (n, d): every sample flattened."""
    return jnp.reshape(x, (x.shape[0], -1))


def sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pairwise squared Euclidean distances (m, n), clipped at 0 against round-off."""
    d = jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(d, 0.0)


@functools.partial(jax.jit, static_argnames=("kernel_mul", "kernel_num"))
def mk_mmd(
    x: jax.Array,
    y: jax.Array,
    kernel_mul: float = 2.0,
    kernel_num: int = 5,
    bandwidth: float | jax.Array | None = None,
) -> jax.Array:
    """Unbiased multi-kernel Gaussian MMD^2 between samples x (m, D) and y (n, D); m, n >= 2.

    `bandwidth` is the middle kernel's h in exp(-||a-b||^2 / h). By default it is the mean
    squared distance over distinct pairs of the pooled sample (the DAN heuristic), under
    `stop_gradient`: the features should move to shrink the discrepancy, not to inflate the
    kernel width that measures it.
    """
    x, y = _rows(x), _rows(y)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples per side, got {m} and {n}")
    dxx, dyy, dxy = sq_dists(x, x), sq_dists(y, y), sq_dists(x, y)
    if bandwidth is None:
        total = m + n
        pooled_sum = dxx.sum() + dyy.sum() + 2.0 * dxy.sum()  # diagonal distances are 0
        bandwidth = jax.lax.stop_gradient(pooled_sum / (total * (total - 1)))
    scales = jnp.asarray([kernel_mul ** (i - kernel_num // 2) for i in range(kernel_num)])
    widths = jnp.maximum(bandwidth * scales, 1e-12)

    def kernel(d: jax.Array) -> jax.Array:
        return jnp.exp(-d[..., None] / widths).sum(-1)

    kxx, kyy, kxy = kernel(dxx), kernel(dyy), kernel(dxy)
    within_x = (kxx.sum() - jnp.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - jnp.trace(kyy)) / (n * (n - 1))
    return within_x + within_y - 2.0 * kxy.mean()


def covariance(x: jax.Array) -> jax.Array:
    """Unbiased covariance (d, d) of the rows of x (n, d); n >= 2."""
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"covariance needs at least 2 samples, got {n}")
    centred = x - x.mean(0, keepdims=True)
    return centred.T @ centred / (n - 1)


@jax.jit
def coral_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """(1 / (4 d^2)) ||C_x - C_y||_F^2 for x (m, d), y (n, d); inputs are flattened per row."""
    x, y = _rows(x), _rows(y)
    d = x.shape[1]
    diff = covariance(x) - covariance(y)
    return jnp.sum(diff * diff) / (4.0 * d * d)


# DomainBed's two distances (`domainbed/algorithms.py`, AbstractMMD), for its CORAL and MMD
# across training environments (`dg_coral`, `dg_mmd`). They are not DAN's and Deep CORAL's
# above: DomainBed's Gaussian MMD is the biased estimate at seven fixed bandwidths, and its
# CORAL adds the means and averages the squared differences (1 / d and 1 / d^2, not 1 / 4d^2).
DOMAINBED_GAMMAS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def gaussian_mmd(x: jax.Array, y: jax.Array,
                 gammas: tuple[float, ...] = DOMAINBED_GAMMAS) -> jax.Array:
    """Biased MMD^2 with k(a, b) = sum_g exp(-g ||a - b||^2): mean Kxx + mean Kyy - 2 mean Kxy
    (diagonals included), exactly 0 for y = x. x (m, d), y (n, d)."""
    x, y = _rows(x), _rows(y)

    def k(a: jax.Array, b: jax.Array) -> jax.Array:
        d = jnp.maximum(sq_dists(a, b), 1e-30)  # DomainBed's clamp_min
        return sum(jnp.exp(-g * d) for g in gammas).mean()

    return k(x, x) + k(y, y) - 2.0 * k(x, y)


def mean_cov_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """mean_d (mu_x - mu_y)^2 + mean_{d,d'} (C_x - C_y)^2 with unbiased covariances."""
    x, y = _rows(x), _rows(y)
    mean_diff = jnp.mean((x.mean(0) - y.mean(0)) ** 2)
    return mean_diff + jnp.mean((covariance(x) - covariance(y)) ** 2)
