"""CORAL distance (Sun & Saenko 2016): how far apart two samples' second-order statistics are.

    coral(X, Y) = ||C_X - C_Y||_F^2 / (4 d^2),
    C_X = (X^T X - (1^T X)^T (1^T X) / n) / (n - 1)   (unbiased covariance, d x d).

Zero when the covariances agree; blind to a pure mean shift by design (Deep CORAL aligns
correlations, not means). The 1 / (4 d^2) keeps it comparable across feature widths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
    x = jnp.reshape(x, (x.shape[0], -1))
    y = jnp.reshape(y, (y.shape[0], -1))
    d = x.shape[1]
    diff = covariance(x) - covariance(y)
    return jnp.sum(diff * diff) / (4.0 * d * d)
