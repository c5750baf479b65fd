"""The gradient reversal layer and DANN's lambda schedule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtl.methods.adversarial import dann_lambda, gradient_reversal


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0, 2.5])
def test_identity_forward_and_exact_flipped_scaled_gradient(coeff):
    x = jnp.asarray([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    w = jnp.asarray([[2.0, 1.0, -1.0], [0.25, 4.0, 3.0]])
    np.testing.assert_array_equal(gradient_reversal(x, coeff), x)
    g = jax.grad(lambda u: jnp.sum(gradient_reversal(u, coeff) * w))(x)
    np.testing.assert_allclose(g, -coeff * w, rtol=0, atol=0)


def test_traced_coefficient_gets_no_gradient():
    x, w = jnp.ones(3), jnp.asarray([1.0, 2.0, 3.0])

    @jax.jit
    def f(u, c):
        return jnp.sum(gradient_reversal(u, c) * w)

    gx, gc = jax.grad(f, argnums=(0, 1))(x, jnp.float32(0.7))
    np.testing.assert_allclose(gx, -0.7 * w, rtol=1e-6)
    assert float(gc) == 0.0


def test_dann_schedule():
    p = jnp.linspace(0, 1, 11)
    lam = dann_lambda(p, 10.0)
    np.testing.assert_allclose(lam, 2 / (1 + np.exp(-10 * np.asarray(p))) - 1, rtol=1e-6)
    assert float(lam[0]) == 0.0 and 0.999 < float(lam[-1]) < 1.0
    assert np.all(np.diff(np.asarray(lam)) > 0)
