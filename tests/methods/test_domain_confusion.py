"""Domain confusion: the discriminator term moves only `disc/`, the confusion term only the
backbone (compared with gradients computed by hand with the other side held constant)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from method_testkit import (
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

from jtl.methods.domain_confusion import DomainConfusion, confusion_loss

# disc_norm="none": the hand gradients call the discriminator per domain (see test_dann.py).
METHOD = DomainConfusion(weight=0.6, disc_weight=1.3, disc_hidden=8, disc_layers=2,
                         disc_norm="none")


def test_confusion_loss_is_ce_against_uniform():
    z = np.asarray([-2.0, 0.0, 3.0])
    q = 1 / (1 + np.exp(-z))
    hand = np.mean(-0.5 * np.log(q) - 0.5 * np.log(1 - q))
    np.testing.assert_allclose(confusion_loss(jnp.asarray(z)), hand, rtol=1e-6)
    np.testing.assert_allclose(confusion_loss(jnp.zeros(4)), np.log(2), rtol=1e-6)
    assert float(jax.grad(confusion_loss)(jnp.zeros(1))[0]) == 0.0  # minimum at q = 1/2


def test_each_term_moves_only_its_own_parameters():
    graphdef, params = tiny(METHOD)
    batch = make_batch(shift=1.5)
    xs, ys, xt = batch["source"]["x"], batch["source"]["y"], batch["target"]["x"]
    _, metrics, g = evaluate(METHOD, graphdef, params, batch)
    assert {"cls_loss", "domain_loss", "domain_acc", "confusion_loss"} <= set(metrics)
    backbone = jax.jit(lambda p, x: nnx.merge(graphdef, p).backbone(x))
    f_s, f_t = backbone(params, xs), backbone(params, xt)  # concrete: no path to the backbone

    def disc_term(m):
        return 0.5 * (jnp.mean(source_bce(m.disc(f_s))) + jnp.mean(target_bce(m.disc(f_t))))

    def cls(m):
        return ce(m.head(m.backbone(xs)), ys)

    def conf(m):
        d = m.disc(m.backbone(jnp.concatenate([xs, xt])))
        return 0.5 * (confusion_loss(d[: len(xs)]) + confusion_loss(d[len(xs):]))

    (disc_value, g_disc), (_, g_cls), (conf_value, g_conf) = hand_grads(
        graphdef, params, disc_term, cls, conf)
    np.testing.assert_allclose(metrics["domain_loss"], disc_value, rtol=1e-5)
    np.testing.assert_allclose(metrics["confusion_loss"], conf_value, rtol=1e-5)
    assert tree_norm(g["disc"]) > 1e-4 and tree_norm(g_conf["backbone"]) > 1e-5
    # disc: the discriminator term only (the confusion term would pull it towards 1/2)
    assert_tree_close(g["disc"], tree_axpy(METHOD.disc_weight, g_disc["disc"]))
    # backbone: CE + weight * confusion only (the disc term would make features *more*
    # separable); the head: CE only
    assert_tree_close(g["backbone"], tree_axpy(METHOD.weight, g_conf["backbone"],
                                               g_cls["backbone"]))
    assert_tree_close(g["head"], g_cls["head"])
