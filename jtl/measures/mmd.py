"""Multi-kernel maximum mean discrepancy (MK-MMD), the alignment loss of DAN (Long et al. 2015).

With a characteristic kernel k, MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y) is zero iff
P = Q. DAN uses a sum of Gaussian kernels at geometrically spaced bandwidths so that no single
bandwidth has to be tuned:

    k(a, b) = sum_{i=0}^{K-1} exp(-||a - b||^2 / h_i),   h_i = h * mul^(i - K // 2).

The unbiased estimator drops the i = j terms of the within-domain sums:

    MMD_u^2 = sum_{i!=j} k(x_i, x_j) / (m (m-1)) + sum_{i!=j} k(y_i, y_j) / (n (n-1))
              - 2 sum_{i,j} k(x_i, y_j) / (m n).

It is zero *in expectation* for two samples of one distribution, so single estimates can be
slightly negative. For the *same* batch on both sides (y = x) it is exactly
-2 (K - kbar) / m <= 0, where kbar is the mean off-diagonal kernel value: the cross term keeps
its diagonal k(x_i, x_i) = K, the within terms do not. That goes to 0 as m grows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
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
    x = jnp.reshape(x, (x.shape[0], -1))
    y = jnp.reshape(y, (y.shape[0], -1))
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples per side, got {m} and {n}")
    dxx, dyy, dxy = _sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y)
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
