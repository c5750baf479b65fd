"""CDAN: the multilinear conditioning, its randomized variant, the reversal and CDAN+E weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from method_testkit import (
    CLASSES,
    FEATURES,
    Tiny,
    assert_tree_close,
    ce,
    evaluate,
    hand_grads,
    make_batch,
    source_bce,
    target_bce,
    tiny,
    tree_axpy,
    tree_norm,
)

from jtl.methods.adversarial import dann_lambda
from jtl.methods.cdan import CDAN, multilinear_map, randomized_multilinear_map


def test_multilinear_map_values():
    f = jnp.asarray([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
    g = jnp.asarray([[0.25, 0.75], [1.0, 0.0]])
    h = multilinear_map(f, g)
    assert h.shape == (2, 6)
    np.testing.assert_allclose(h[0], [0.25, 0.75, 0.5, 1.5, 0.75, 2.25])
    np.testing.assert_allclose(h[1], [0.0, 0.0, -1.0, 0.0, 4.0, 0.0])


def test_randomized_map_is_fixed_and_preserves_norms_in_expectation():
    rng = np.random.default_rng(0)
    f = jnp.asarray(rng.normal(size=(2, 5)), jnp.float32)
    g = jax.nn.softmax(jnp.asarray(rng.normal(size=(2, 3)), jnp.float32))
    rmm = jax.jit(randomized_multilinear_map, static_argnums=(2, 3))
    r = rmm(f, g, 16384, 0)
    assert r.shape == (2, 16384)
    np.testing.assert_array_equal(r, rmm(f, g, 16384, 0))  # same projections every call
    h = multilinear_map(f, g)
    # ||T(f, g)||^2 estimates ||f||^2 ||g||^2 = ||f ⊗ g||^2, relative std sqrt(8 / k) ~ 2%.
    np.testing.assert_allclose(jnp.sum(r * r, -1), jnp.sum(h * h, -1), rtol=0.12)


def test_discriminator_input_width():
    def first_layer(method: CDAN) -> tuple[int, ...]:
        model = nnx.eval_shape(lambda: Tiny(method, nnx.Rngs(0)))
        return model.disc.hidden[0].kernel.shape

    assert first_layer(CDAN(disc_hidden=8)) == (FEATURES * CLASSES, 8)
    assert first_layer(CDAN(disc_hidden=8, randomized=True, randomized_dim=7)) == (7, 8)


@pytest.mark.parametrize(("entropy", "randomized"), [(False, False), (True, True)])
def test_gradients(entropy, randomized):
    # disc_norm="none": the hand gradients call the discriminator per domain (test_dann.py).
    method = CDAN(weight=0.8, disc_hidden=8, entropy=entropy, randomized=randomized,
                  randomized_dim=5, disc_norm="none")
    progress = 0.2
    graphdef, params = tiny(method)
    batch = make_batch(shift=1.0)
    xs, ys, xt = batch["source"]["x"], batch["source"]["y"], batch["target"]["x"]
    _, metrics, g = evaluate(method, graphdef, params, batch, progress)

    def conditioned(f, p):
        if randomized:
            return randomized_multilinear_map(f, p, 5, 0)
        return (f[:, :, None] * p[:, None, :]).reshape(len(f), -1)  # f ⊗ p

    def dom(m):  # no reversal: as if everything minimised it
        f = m.backbone(jnp.concatenate([xs, xt]))
        p = jax.lax.stop_gradient(jax.nn.softmax(m.head(f)))
        z = m.disc(conditioned(f, p))
        w = 1 + jnp.exp(jnp.sum(p * jnp.log(p), -1)) if entropy else jnp.ones_like(z)
        n = len(xs)

        def wmean(v, w):
            return jnp.sum(w * v) / jnp.sum(w)

        return 0.5 * (wmean(source_bce(z[:n]), w[:n]) + wmean(target_bce(z[n:]), w[n:]))

    def cls(m):
        return ce(m.head(m.backbone(xs)), ys)

    (_, g_cls), (dom_value, g_dom) = hand_grads(graphdef, params, cls, dom)
    np.testing.assert_allclose(metrics["domain_loss"], dom_value, rtol=1e-5)
    lam = float(dann_lambda(jnp.float32(progress)))
    assert tree_norm(g_dom["backbone"]) > 1e-5 and tree_norm(g["disc"]) > 1e-4
    assert_tree_close(g["backbone"],
                      tree_axpy(-lam * method.weight, g_dom["backbone"], g_cls["backbone"]))
    # softmax(logits) is under stop_gradient: the head learns from the source CE only
    assert_tree_close(g["head"], g_cls["head"])
    assert_tree_close(g["disc"], tree_axpy(method.weight, g_dom["disc"]))
