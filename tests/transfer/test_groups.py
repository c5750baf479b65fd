"""Parameter groups as optax labels (jtl.train.optim): first match wins, lr multipliers,
late starts that leave the optimizer state alone, L2-SP's pull toward the initial values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtl.errors import JtlError
from jtl.train.optim import Group, build_optimizer, hold_until, l2_toward_init, trainable_labels
from jtl.transfer import Recipe

PARAMS = {"backbone": {"blocks": {"0": {"k": jnp.ones(2)}, "1": {"k": jnp.ones(2)}}},
          "head": {"k": jnp.ones(2)}}
SGD = {"name": "sgd", "lr": 0.1, "momentum": None, "weight_decay": 0.0}


def updates(tx, params=PARAMS, grads=None, steps=1):
    grads = grads or jax.tree_util.tree_map(jnp.ones_like, params)
    state = tx.init(params)
    out = []
    for _ in range(steps):
        u, state = tx.update(grads, state, params)
        out.append(u)
    return out


def test_labels_first_matching_group_wins_and_freeze_beats_groups():
    groups = [Group("head/.*"), Group("backbone/.*")]
    labels = trainable_labels(PARAMS, ".*", "backbone/blocks/0/.*", groups)
    assert labels == {"backbone": {"blocks": {"0": {"k": "frozen"}, "1": {"k": "group1"}}},
                      "head": {"k": "group0"}}


def test_lr_mult_scales_only_its_group():
    tx = build_optimizer(SGD, PARAMS, 10, ".*", None, [{"params": "head/.*", "lr_mult": 10.0}])
    (u,) = updates(tx)
    np.testing.assert_allclose(u["head"]["k"], -1.0)  # 10 x 0.1 x grad 1
    np.testing.assert_allclose(u["backbone"]["blocks"]["0"]["k"], -0.1)


def test_discriminative_layer_decay_divides_per_block():
    groups = Recipe(name="discriminative", layer_decay=2.0).all_groups(2)
    (u,) = updates(build_optimizer(SGD, PARAMS, 10, ".*", None, groups))
    np.testing.assert_allclose(u["head"]["k"], -0.1)
    np.testing.assert_allclose(u["backbone"]["blocks"]["1"]["k"], -0.05)
    np.testing.assert_allclose(u["backbone"]["blocks"]["0"]["k"], -0.025)


def test_hold_until_zero_updates_and_untouched_state_then_inner_from_its_first_step():
    inner = optax.adam(0.1)
    steps = updates(hold_until(2, inner), steps=3)
    for u in steps[:2]:
        assert all(np.all(np.asarray(x) == 0) for x in jax.tree_util.tree_leaves(u))
    (first,) = updates(inner)  # the inner optimizer's own first step, with fresh state
    for a, b in zip(jax.tree_util.tree_leaves(steps[2]), jax.tree_util.tree_leaves(first),
                    strict=True):
        np.testing.assert_allclose(a, b)


def test_l2_toward_init_adds_alpha_times_distance_to_the_initial_values():
    tx = l2_toward_init(0.5)
    state = tx.init({"w": jnp.array([1.0, 2.0])})
    u, _ = tx.update({"w": jnp.zeros(2)}, state, {"w": jnp.array([3.0, 2.0])})
    np.testing.assert_allclose(u["w"], [1.0, 0.0])  # 0.5 * ([3, 2] - [1, 2])


def test_l2_sp_group_pulls_toward_pretrained_and_decays_the_head():
    groups = [{"params": "backbone/.*", "l2_init": 0.01}, {"params": "head/.*", "l2": 0.01}]
    tx = build_optimizer(SGD, PARAMS, 10, ".*", None, groups)
    state = tx.init(PARAMS)
    moved = jax.tree_util.tree_map(lambda p: p + 1.0, PARAMS)
    zero = jax.tree_util.tree_map(jnp.zeros_like, PARAMS)
    u, _ = tx.update(zero, state, moved)
    np.testing.assert_allclose(u["backbone"]["blocks"]["0"]["k"], -0.1 * 0.01 * 1.0)
    np.testing.assert_allclose(u["head"]["k"], -0.1 * 0.01 * 2.0)


@pytest.mark.parametrize("bad", [{"lr_mult": 2}, {"params": "x", "start": 1.0},
                                 {"params": "x", "lr": 2}, {"params": "(", "lr_mult": 1.0}])
def test_bad_groups_are_user_errors(bad):
    with pytest.raises(JtlError):
        build_optimizer(SGD, PARAMS, 10, ".*", None, [bad])


def test_everything_frozen_only_when_asked():
    with pytest.raises(JtlError, match="no parameter is trainable"):
        trainable_labels(PARAMS, ".*", "backbone/.*|head/.*")
    labels = trainable_labels(PARAMS, ".*", ".*")  # freeze='.*': the prototype recipe
    assert set(jax.tree_util.tree_leaves(labels)) == {"frozen"}


def test_freeze_k_regex_joins_the_users_freeze():
    r = Recipe(name="freeze_k", freeze_k=2)
    assert r.freeze(None, 3) == "backbone/blocks/(0|1)/.*"
    assert r.freeze("head/.*", 3) == "(?:head/.*)|(?:backbone/blocks/(0|1)/.*)"
    assert Recipe().freeze("x", 3) == "x"
