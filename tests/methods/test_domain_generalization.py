"""DomainBed's algorithms over several sources (irm, vrex, group_dro, mixup): each does what it
claims, on hand-made logits through an identity network (inputs are the logits)."""

from __future__ import annotations

import itertools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.methods.base import Boundary
from jtl.methods.group_dro import update_q
from jtl.methods.irm import irm_penalty
from jtl.methods.multidomain import split_envs
from jtl.methods.vrex import risk_variance


class Identity:
    """features = head = identity: the batch's inputs are the logits."""

    def features(self, x):
        return x

    def head(self, f):
        return f


def ctx(sources: int) -> Boundary:
    roles = types.SimpleNamespace(sources=tuple(range(sources)))
    return Boundary(0, 10, None, roles, jax.random.key(0))


def calibrated(c: float, p: float, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """n examples with binary logits [0, c], a fraction p labelled 1 in each half (even and
    odd positions): the scale w = 1 is optimal iff sigmoid(c) = p."""
    k = round(p * n / 2)
    half = np.array([1] * k + [0] * (n // 2 - k))
    labels = np.empty(n, np.int32)
    labels[::2], labels[1::2] = half, half
    return np.tile([0.0, c], (n, 1)).astype(np.float32), labels


def batch(envs: list[tuple[np.ndarray, np.ndarray]], shuffle: int | None = None) -> dict:
    x = np.concatenate([e[0] for e in envs])
    y = np.concatenate([e[1] for e in envs])
    d = np.repeat(np.arange(len(envs)), len(envs[0][1])).astype(np.int32)
    if shuffle is not None:  # the helper sorts by `domain`, whatever the order
        order = np.random.default_rng(shuffle).permutation(len(y))
        # keep each environment's examples in their order (halves stay even/odd)
        order = np.concatenate([np.flatnonzero(d == e) for e in np.unique(d[order])])
        x, y, d = x[order], y[order], d[order]
    return {"source": {"x": jnp.asarray(x), "y": jnp.asarray(y), "domain": jnp.asarray(d)}}


def test_split_envs_groups_by_domain():
    d = jnp.array([1, 0, 1, 0, 2, 2])
    x = jnp.arange(6)
    np.testing.assert_array_equal(split_envs(x, d, 3), [[1, 3], [0, 2], [4, 5]])


def test_one_source_is_refused():
    for name in ("irm", "vrex", "group_dro", "mixup"):
        with pytest.raises(JtlError, match="several sources"):
            build_method({"name": name}).init_state(None, ctx(1))


def test_irm_penalty_zero_when_optimal_in_every_env_positive_otherwise():
    # sigmoid(log 3) = 0.75, sigmoid(log 9) = 0.9: each env calibrated, w = 1 optimal in both
    for c, p in [(np.log(3), 0.75), (np.log(9), 0.9)]:
        z, y = calibrated(c, p)
        assert abs(float(irm_penalty(jnp.asarray(z), jnp.asarray(y)))) < 1e-6
    z, y = calibrated(np.log(3), 0.9)  # under-confident: the scale should grow
    pen = float(irm_penalty(jnp.asarray(z), jnp.asarray(y)))
    c = np.log(3)
    grad = c * (1 / (1 + np.exp(-c)) - 0.9)  # d/dw CE(w z) on each half, by hand
    assert pen > 0
    np.testing.assert_allclose(pen, grad * grad, rtol=1e-5)


def test_irm_loss_anneals_the_penalty_weight():
    method = build_method({"name": "irm", "weight": 100.0, "anneal_steps": 2})
    state = method.init_state(None, ctx(2))
    good, bad = calibrated(np.log(3), 0.75), calibrated(np.log(3), 0.9)
    b = batch([good, bad], shuffle=0)
    pen = float(irm_penalty(jnp.asarray(bad[0]), jnp.asarray(bad[1]))) / 2  # mean over envs
    weights = []
    for _ in range(4):
        loss, m, state = method.loss_with_state(Identity(), state, b, jax.random.key(0), 0.0)
        np.testing.assert_allclose(float(m["penalty"]), pen, rtol=1e-5)
        np.testing.assert_allclose(float(loss), float(m["nll"]) + float(m["penalty_weight"]) * pen,
                                   rtol=1e-5)
        weights.append(float(m["penalty_weight"]))
    assert weights == [1.0, 1.0, 100.0, 100.0]
    assert int(state["update_count"]) == 4
    # the penalty is differentiable (a gradient of a gradient) and pushes toward calibration
    g = jax.grad(lambda x: method.loss_with_state(
        Identity(), state, {"source": {**b["source"], "x": x}}, None, 0.0)[0])(b["source"]["x"])
    assert np.all(np.isfinite(np.asarray(g)))


def test_vrex_variance_of_hand_made_risks():
    mean, var = risk_variance(jnp.array([0.2, 0.6, 1.0]))
    np.testing.assert_allclose([float(mean), float(var)], [0.6, 0.32 / 3], rtol=1e-6)
    method = build_method({"name": "vrex", "weight": 10.0, "anneal_steps": 1})
    state = method.init_state(None, ctx(2))
    envs = [calibrated(np.log(3), 0.75), calibrated(-1.0, 0.9)]
    risks = [float(jnp.mean(jax.nn.logsumexp(z, -1) - z[np.arange(len(y)), y]))
             for z, y in ((jnp.asarray(a), b) for a, b in envs)]
    r_mean, r_var = np.mean(risks), np.var(risks)
    assert r_var > 0.01
    for w in (1.0, 10.0):
        loss, m, state = method.loss_with_state(Identity(), state, batch(envs), None, 0.0)
        np.testing.assert_allclose(float(m["penalty"]), r_var, rtol=1e-5)
        np.testing.assert_allclose(float(loss), r_mean + w * r_var, rtol=1e-5)
    # equal risks: no penalty
    _, m, _ = method.loss_with_state(Identity(), state, batch([envs[0], envs[0]]), None, 0.0)
    assert abs(float(m["penalty"])) < 1e-10


def test_group_dro_moves_q_toward_the_worst_environment():
    method = build_method({"name": "group_dro", "eta": 0.5})
    state = method.init_state(None, ctx(3))
    np.testing.assert_allclose(np.asarray(state["q"]), [1 / 3] * 3)
    envs = [calibrated(np.log(3), 0.75), calibrated(-2.0, 0.9), calibrated(np.log(9), 0.9)]
    b = batch(envs)
    step = jax.jit(lambda s: method.loss_with_state(Identity(), s, b, None, 0.0))
    risks = np.array([np.mean(np.logaddexp(0, zz[:, 1]) - zz[np.arange(len(t)), t])
                      for zz, t in envs])
    qs = []
    for _ in range(5):
        loss, _, state = step(state)
        q = np.asarray(state["q"])
        qs.append(q)
        np.testing.assert_allclose(q.sum(), 1.0, rtol=1e-6)
        np.testing.assert_allclose(float(loss), q @ risks, rtol=1e-5)  # under the new q
    worst = 1  # logits -2 on labels 90% 1: the highest risk
    assert np.argmax(risks) == worst
    assert all(b_[worst] > a_[worst] for a_, b_ in itertools.pairwise(qs))
    assert np.argmax(qs[-1]) == worst
    # the step's rule by hand: q <- q exp(eta R) / Z, loss = q . R
    r = jnp.array([0.5, 2.0, 0.1])
    q = update_q(jnp.array([0.2, 0.3, 0.5]), r, 0.5)
    hand = np.array([0.2, 0.3, 0.5]) * np.exp(0.5 * np.asarray(r))
    np.testing.assert_allclose(np.asarray(q), hand / hand.sum(), rtol=1e-6)


def test_mixup_lambda_from_the_key_and_loss_is_the_hand_mix():
    method = build_method({"name": "mixup", "alpha": 0.2})
    state = method.init_state(None, ctx(3))
    rng = np.random.default_rng(0)
    n, c = 4, 5
    x = rng.normal(size=(3, n, c)).astype(np.float32)
    y = rng.integers(0, c, (3, n)).astype(np.int32)
    b = batch([(x[e], y[e]) for e in range(3)])
    key = jax.random.key(7)
    loss, m, _ = method.loss_with_state(Identity(), state, b, key, 0.0)
    # by hand: the key's permutation, cyclic pairs, Beta(0.2, 0.2) per pair
    k_perm, k_lam = jax.random.split(key)
    perm = np.asarray(jax.random.permutation(k_perm, 3))
    lam = np.asarray(jax.random.beta(k_lam, 0.2, 0.2, (3,)))
    np.testing.assert_allclose(float(m["mixup_lambda"]), lam.mean(), rtol=1e-6)

    def ce(z, t):
        z = z - z.max(-1, keepdims=True)
        return np.mean(np.log(np.exp(z).sum(-1)) - z[np.arange(len(t)), t])

    total = 0.0
    for i in range(3):
        a, bb = perm[i], perm[(i + 1) % 3]
        mixed = lam[i] * x[a] + (1 - lam[i]) * x[bb]
        total += lam[i] * ce(mixed, y[a]) + (1 - lam[i]) * ce(mixed, y[bb])
    np.testing.assert_allclose(float(loss), total / 3, rtol=1e-5)
    # another key, other lambdas
    _, m2, _ = method.loss_with_state(Identity(), state, b, jax.random.key(8), 0.0)
    assert float(m2["mixup_lambda"]) != float(m["mixup_lambda"])


RUN = ["domain@target=sklearn_digits", "model=mlp", "model.hidden=[32]", "trainer=debug",
       "trainer.progress=false", "trainer.tensorboard=false"]


def test_a_run_over_two_sources_weights_the_harder_one(tmp_path):
    """Through the trainer: group_dro's q, checkpointed in the method state, ends above
    uniform on the source drowned in pixel noise (its risk stays high), and a one-source
    run of a multi-domain method is refused before training."""
    from jtl.train import train_and_evaluate
    from tests.conftest import compose_cfg
    from tests.methods.source_free_kit import params_at

    sources = ("sources=[{name: sklearn_digits}, "
               "{name: sklearn_digits, shifts: [{name: noise, std: 3.0}]}]")
    s = train_and_evaluate(compose_cfg([*RUN, sources, "method=group_dro", "method.eta=0.1"]),
                           tmp_path / "dro")
    assert s["status"] == "completed"
    state = params_at(tmp_path / "dro")["method"]
    q = np.asarray(state["q"])
    np.testing.assert_allclose(q.sum(), 1.0, rtol=1e-5)
    assert q[1] > 0.55 > 0.45 > q[0], q
    with pytest.raises(JtlError, match="several sources"):
        train_and_evaluate(compose_cfg([*RUN, "domain@source=sklearn_digits", "method=irm"]),
                           tmp_path / "one")
