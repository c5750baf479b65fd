"""DANN's shallow version as config (`method=dann_amazon`): the discriminator is a logistic
regressor on the features (no hidden layer), and one step's gradient is the update of the
authors' DANN.py (Algorithm 1 of Ganin et al. 2016) at lambda = 0.1."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx
from method_testkit import assert_tree_close, evaluate, make_batch, np_forward, np_softmax, tiny

from jtl.methods import build_method
from jtl.methods.adversarial import DomainDiscriminator
from tests.conftest import compose_cfg

METHOD = build_method(compose_cfg(["method=dann_amazon"]).method)


def test_preset_is_dann_with_a_fixed_lambda_and_a_linear_discriminator():
    assert (type(METHOD).__name__, METHOD.weight, METHOD.schedule, METHOD.disc_layers,
            METHOD.disc_norm) == ("DANN", 0.2, "constant", 0, "none")


def test_zero_layers_is_a_logistic_regressor():
    disc = DomainDiscriminator(7, 1024, 0, nnx.Rngs(0))
    assert len(disc.hidden) == 0
    assert [p.shape for p in jax.tree.leaves(nnx.state(disc, nnx.Param))] == [(1,), (7, 1)]
    x = jax.random.normal(jax.random.key(0), (3, 7))
    np.testing.assert_allclose(disc(x), (x @ disc.out.kernel[...] + disc.out.bias[...])[:, 0],
                               rtol=1e-6)


def test_gradient_is_dann_py_update_at_lambda_0_1():
    """One source and one target example: -gradient equals DANN.py's deltas (lines 108-139 at
    74eec5e) with lambda_adapt = 0.1, for the linear backbone of the test network (its
    derivative 1 where DANN.py's sigmoid has h (1 - h))."""
    graphdef, params = tiny(METHOD)
    batch = make_batch(n_s=1, n_t=1, shift=1.0)
    _, _, g = evaluate(METHOD, graphdef, params, batch, 0.3)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), nnx.to_pure_dict(params))
    xs, xt = (np.asarray(batch[d]["x"], np.float64)[0] for d in ("source", "target"))
    y = int(batch["source"]["y"][0])
    hs, logits = (a[0] for a in np_forward(params, batch["source"]["x"]))
    ht = np_forward(params, batch["target"]["x"])[0][0]
    u, d = p["disc"]["out"]["kernel"][:, 0], p["disc"]["out"]["bias"][0]
    lam = 0.1
    gho_s, gho_t = (1 / (1 + np.exp(-(u @ h + d))) for h in (hs, ht))
    delta_c = np_softmax(logits) - np.eye(2)[y]
    delta_b = p["head"]["kernel"] @ delta_c + lam * (1 - gho_s) * u - lam * gho_t * u
    delta_w = np.outer(xs, p["head"]["kernel"] @ delta_c + lam * (1 - gho_s) * u) - (
        np.outer(xt, lam * gho_t * u))
    delta_d = lam * (1 - gho_s) - lam * gho_t
    delta_u = lam * (1 - gho_s) * hs - lam * gho_t * ht
    # DANN.py: W -= lr delta_W, b -= lr delta_b, V -= lr delta_V, U += lr delta_U, d += lr delta_d
    assert_tree_close(g["backbone"], {"kernel": delta_w, "bias": delta_b}, atol=1e-5)
    assert_tree_close(g["head"], {"kernel": np.outer(hs, delta_c), "bias": delta_c}, atol=1e-5)
    assert_tree_close(g["disc"]["out"], {"kernel": -delta_u[:, None], "bias": -delta_d},
                      atol=1e-5)
