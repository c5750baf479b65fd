"""DomainBed's algorithms beyond irm/vrex/group_dro/mixup (mldg, fish, rsc, sagnet, dg_coral,
dg_mmd, dg_dann, cdann): each does what it claims, on tiny hand-made networks and batches."""

from __future__ import annotations

import itertools
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jtl.discrepancy import gaussian_mmd, mean_cov_distance
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.methods.base import Boundary, cross_entropy
from jtl.methods.dg_dann import class_balanced_weights
from jtl.methods.fish import fish_direction, with_gradient
from jtl.methods.mldg import adam_first_step, meta_pairs
from jtl.methods.rsc import rsc_mask
from jtl.methods.sagnet import randomize


def ctx(sources: int) -> Boundary:
    return Boundary(0, 10, None, types.SimpleNamespace(sources=tuple(range(sources))),
                    jax.random.key(0))


class Tiny(nnx.Module):
    """features = a linear layer (or the inputs), head = a linear layer, plus a method's
    modules: the Network's interface at toy size."""

    def __init__(self, d_in: int, d_f: int, c: int, method=None, seed: int = 0,
                 linear_features: bool = True) -> None:
        rngs = nnx.Rngs(seed)
        self.backbone = nnx.Linear(d_in, d_f, rngs=rngs) if linear_features else None
        self.head = nnx.Linear(d_f, c, rngs=rngs)
        for k, v in ({} if method is None else method.modules(d_f, c, rngs)).items():
            setattr(self, k, v)

    def features(self, x):
        return x if self.backbone is None else self.backbone(x)

    def __call__(self, x):
        return self.head(self.features(x))


def env_batch(xs: list[np.ndarray], ys: list[np.ndarray]) -> dict:
    d = np.concatenate([np.full(len(y), e, np.int32) for e, y in enumerate(ys)])
    return {"source": {"x": jnp.asarray(np.concatenate(xs), jnp.float32),
                       "y": jnp.asarray(np.concatenate(ys), jnp.int32), "domain": jnp.asarray(d)}}


def grads_of(method, model, state, batch, key):
    graphdef, params = nnx.split(model)

    def f(p):
        return method.loss_with_state(nnx.merge(graphdef, p), state, batch, key, 0.0)[0]

    return jax.jit(jax.grad(f))(params), params, graphdef


def test_multi_domain_methods_refuse_one_source():
    for name in ("mldg", "fish", "dg_coral", "dg_mmd", "dg_dann", "cdann"):
        with pytest.raises(JtlError, match="several sources"):
            build_method({"name": name}).init_state(None, ctx(1))
    with pytest.raises(JtlError, match="no meta-train"):
        build_method({"name": "mldg", "n_meta_test": 2}).init_state(None, ctx(2))
    with pytest.raises(JtlError, match="max_domains=3"):
        build_method({"name": "dg_dann", "max_domains": 2}).init_state(None, ctx(3))


# -- dg_coral, dg_mmd: DomainBed's pairwise penalties -------------------------------------

def test_distances_zero_for_identical_features_positive_otherwise_and_by_hand():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
    assert float(gaussian_mmd(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(mean_cov_distance(x, x)) == pytest.approx(0.0, abs=1e-12)
    y = x * 2.0 + 1.0
    assert float(gaussian_mmd(x, y)) > 1e-2 and float(mean_cov_distance(x, y)) > 1e-1
    # by hand (DomainBed's AbstractMMD.mmd, numpy)
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mu = np.mean((xn.mean(0) - yn.mean(0)) ** 2)
    cov = np.mean((np.cov(xn.T) - np.cov(yn.T)) ** 2)
    np.testing.assert_allclose(float(mean_cov_distance(x, y)), mu + cov, rtol=1e-4)

    def k(a, b):
        d = np.maximum(((a[:, None] - b[None]) ** 2).sum(-1), 1e-30)
        return sum(np.exp(-g * d) for g in (1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3)).mean()

    np.testing.assert_allclose(float(gaussian_mmd(x, y)), k(xn, xn) + k(yn, yn) - 2 * k(xn, yn),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["dg_coral", "dg_mmd"])
def test_pairwise_penalty_zero_for_identical_envs_positive_otherwise(name):
    method = build_method({"name": name, "weight": 2.0})
    state = method.init_state(None, ctx(3))
    model = Tiny(3, 3, 2, linear_features=False)  # features are the inputs
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3))
    y = rng.integers(0, 2, 8)
    loss, m, _ = method.loss_with_state(model, state, env_batch([x, x, x], [y, y, y]), None, 0)
    assert abs(float(m["penalty"])) < 1e-6
    shifted = [x, x, 3 * x + 1]
    loss, m, _ = method.loss_with_state(model, state, env_batch(shifted, [y, y, y]), None, 0)
    dist = gaussian_mmd if name == "dg_mmd" else mean_cov_distance
    f = [jnp.asarray(a, jnp.float32) for a in shifted]
    pairs = (dist(f[0], f[1]) + dist(f[0], f[2]) + dist(f[1], f[2])) / 3  # every pair
    assert float(m["penalty"]) > 1e-2
    np.testing.assert_allclose(float(m["penalty"]), float(pairs), rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(m["nll"]) + 2.0 * float(pairs), rtol=1e-5)


# -- mldg: first-order meta-train / meta-test ---------------------------------------------

def test_mldg_gradient_is_domainbeds_first_order_update():
    method = build_method({"name": "mldg", "beta": 0.7, "inner_lr": 0.05})
    envs = 3
    state = method.init_state(None, ctx(envs))
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(6, 4)) + e for e in range(envs)]
    ys = [rng.integers(0, 3, 6) for _ in range(envs)]
    model, key = Tiny(4, 5, 3), jax.random.key(3)
    g, params, graphdef = grads_of(method, model, state, env_batch(xs, ys), key)

    def env_loss(p, e):
        return cross_entropy(nnx.merge(graphdef, p)(jnp.asarray(xs[e], jnp.float32)),
                             jnp.asarray(ys[e]))

    train, test = map(np.asarray, meta_pairs(key, envs, 1))
    assert len(train) == 2 and len(set(train) | set(test)) == envs  # a split of the envs
    want = jax.tree.map(jnp.zeros_like, params)
    for i, j in zip(train, test, strict=True):
        g_i = jax.grad(env_loss)(params, int(i))
        stepped = jax.tree.map(jnp.add, params, adam_first_step(g_i, 0.05))
        g_j = jax.grad(env_loss)(stepped, int(j))  # at the stepped parameters, first order
        want = jax.tree.map(lambda w, a, b: w + (a + 0.7 * b) / envs, want, g_i, g_j)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    # the inner step is a fresh Adam's first one
    p = jnp.array([0.5, -1.0])
    opt = optax.adam(0.05)
    upd, _ = opt.update(jnp.array([0.3, -2.0]), opt.init(p))
    np.testing.assert_allclose(np.asarray(adam_first_step(jnp.array([0.3, -2.0]), 0.05)),
                               np.asarray(upd), rtol=1e-5)


# -- fish: the mean inner-trajectory gradient matches gradients ---------------------------

def test_fish_direction_approximates_the_gradient_inner_product_objective():
    rng = np.random.default_rng(4)
    envs = 3
    xs = [jnp.asarray(rng.normal(size=(10, 4)) + 0.5 * e, jnp.float32) for e in range(envs)]
    ys = [jnp.asarray(rng.integers(0, 3, 10)) for _ in range(envs)]
    w0 = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
          "b": jnp.zeros(3, jnp.float32)}

    def loss(p, e):
        return cross_entropy(xs[e] @ p["w"] + p["b"], ys[e])

    def erm(p):
        return sum(loss(p, e) for e in range(envs)) / envs

    def matching(p, alpha):  # mean L - (alpha / 2E) sum_{e<e'} <G_e, G_e'>  (Shi et al.)
        gs = [jax.grad(loss)(p, e) for e in range(envs)]
        dots = sum(sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(gs[i]),
                                                     jax.tree.leaves(gs[j]), strict=True))
                   for i in range(envs) for j in range(i + 1, envs))
        return erm(p) - alpha / (2 * envs) * dots

    def flat(t):
        return np.concatenate([np.ravel(a) for a in jax.tree.leaves(t)])

    def mean_direction(alpha):  # over the orders the method draws from
        ds = [flat(fish_direction(loss, w0, list(o), alpha)[0])
              for o in itertools.permutations(range(envs))]
        return np.mean(ds, 0)

    errs = []
    for alpha in (0.1, 0.05):
        d = mean_direction(alpha)
        to_matching = np.linalg.norm(d - flat(jax.grad(matching)(w0, alpha)))
        to_erm = np.linalg.norm(d - flat(jax.grad(erm)(w0)))
        assert to_matching < 0.1 * to_erm  # the inner-product term is what sets it apart
        errs.append(to_matching)
    assert errs[1] < 0.35 * errs[0]  # O(alpha^2): halving alpha quarters the error
    # the loss's gradient is exactly the direction, its value the mean inner loss
    d, inner = fish_direction(loss, w0, [2, 0, 1], 0.1)
    val, g = jax.value_and_grad(lambda p: with_gradient(inner, p, d))(w0)
    np.testing.assert_allclose(float(val), float(inner))
    np.testing.assert_allclose(flat(g), flat(d), rtol=1e-6)


def test_fish_method_gradient_is_the_fish_direction():
    method = build_method({"name": "fish", "inner_lr": 0.1})
    state = method.init_state(None, ctx(2))
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=(6, 4)) for _ in range(2)]
    ys = [rng.integers(0, 3, 6) for _ in range(2)]
    key = jax.random.key(2)
    g, params, graphdef = grads_of(method, Tiny(4, 5, 3), state, env_batch(xs, ys), key)

    def env_loss(p, e):
        return cross_entropy(nnx.merge(graphdef, p)(jnp.asarray(xs[e], jnp.float32)),
                             jnp.asarray(ys[e]))

    order = jax.random.permutation(key, 2)
    d, _ = fish_direction(env_loss, params, [order[0], order[1]], 0.1)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(d), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-7)


# -- rsc: mute the top-gradient features of the most-affected examples --------------------

def test_rsc_mutes_the_top_gradient_features_of_the_top_changed_examples():
    rng = np.random.default_rng(6)
    b, d, c = 6, 6, 3
    f = jnp.asarray(rng.uniform(0.5, 1.5, (b, d)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(d, c)), jnp.float32)
    y = jnp.asarray(rng.integers(0, c, b))

    def head(z):
        return z @ w

    mask = np.asarray(rsc_mask(head, f, y, 1 / 3, 1 / 3))
    g = np.asarray(w).T[np.asarray(y)]  # d logit_y / d f = the true class's weight column
    top = np.argsort(-g, axis=1)[:, :2]  # the top third (2 of 6) features by gradient
    muted_rows = np.flatnonzero(mask.min(1) == 0)
    assert len(muted_rows) == 2  # the top third of the batch (2 of 6)
    for r in range(b):
        want = np.ones(d)
        if r in muted_rows:
            want[top[r]] = 0
        np.testing.assert_array_equal(mask[r], want)
    # the muted examples are those whose true-class probability muting lowers most
    p = jax.nn.softmax(head(f), -1)[jnp.arange(b), y]
    keep = np.ones((b, d))
    np.put_along_axis(keep, top, 0, 1)
    change = np.asarray(p - jax.nn.softmax(head(f * keep), -1)[jnp.arange(b), y])
    assert set(muted_rows) == set(np.argsort(-change)[:2])
    # the loss trains on the muted features
    method = build_method({"name": "rsc"})
    model = types.SimpleNamespace(features=lambda x: x, head=head)
    loss, m = method.loss(model, {"source": {"x": f, "y": y}}, None, 0.0)
    np.testing.assert_allclose(float(loss), float(cross_entropy(head(f * mask), y)), rtol=1e-6)
    np.testing.assert_allclose(float(m["kept"]), mask.mean())


# -- sagnet: style and content randomisation, and who each term trains --------------------

def test_sagnet_randomize_swaps_style_or_content():
    rng = np.random.default_rng(7)
    f = jnp.asarray(rng.normal(size=(5, 8)) * rng.uniform(0.5, 3, (5, 1)) + rng.normal(
        size=(5, 1)), jnp.float32)

    def style(z):
        return z.mean(-1), z.var(-1, ddof=1)

    def content(z):
        mu, var = style(z)
        return (z - mu[:, None]) / jnp.sqrt(var[:, None] + 1e-5)

    key = jax.random.key(0)
    k_alpha, k_perm = jax.random.split(key)
    perm = np.asarray(jax.random.permutation(k_perm, 5))
    s = randomize(f, key, "style")
    np.testing.assert_allclose(np.asarray(content(s)), np.asarray(content(f)), atol=1e-4)
    mu, mu_s = np.asarray(style(f)[0]), np.asarray(style(s)[0])
    a = np.asarray(jax.random.uniform(k_alpha, (5, 1)))[:, 0]
    np.testing.assert_allclose(mu_s, a * mu + (1 - a) * mu[perm], atol=1e-5)
    cnt = randomize(f, key, "content")
    np.testing.assert_allclose(np.asarray(content(cnt)), np.asarray(content(f))[perm], atol=1e-4)
    np.testing.assert_allclose(np.asarray(style(cnt)[0]), mu, atol=1e-5)


def test_sagnet_terms_reach_only_their_parameters():
    method = build_method({"name": "sagnet", "weight": 0.1})
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, 8))
    model = Tiny(4, 6, 3, method)
    graphdef, params = nnx.split(model)
    key = jax.random.key(1)

    def grad_of(metric):
        def f(p):
            loss, m = method.loss(nnx.merge(graphdef, p), {"source": {"x": x, "y": y}}, key, 0)
            return loss if metric is None else m[metric]
        return nnx.State(jax.jit(jax.grad(f))(params)).to_pure_dict()

    total, style, adv = grad_of(None), grad_of("style_loss"), grad_of("adv_loss")
    # the style head learns from its own loss only; the adversary moves the features only
    for k in ("kernel", "bias"):
        np.testing.assert_allclose(total["style"][k], style["style"][k], rtol=1e-5)
        assert np.all(np.asarray(adv["style"][k]) == 0)
        assert np.all(np.asarray(style["backbone"][k]) == 0)
        assert np.all(np.asarray(adv["head"][k]) == 0)
        assert np.any(np.asarray(adv["backbone"][k]) != 0)


# -- dg_dann, cdann: a multi-class discriminator against the features ---------------------

def separable_envs(n: int = 16, seed: int = 9) -> tuple[list, list]:
    """Three environments told apart by the last input coordinate (its mean 0, 3, 6), the label
    by the first."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for e in range(3):
        y = rng.integers(0, 2, n)
        x = rng.normal(size=(n, 3)) * 0.3
        x[:, 0] += 2 * y - 1
        x[:, 2] += 3 * e
        xs.append(x)
        ys.append(y)
    return xs, ys


def train(method, model, batch, steps: int, only: tuple[str, ...], lr: float = 1e-2):
    """`steps` Adam steps of the method's loss on the parameters under `only` (top-level
    modules); the network after them and the discriminator's loss at every step."""
    state = method.init_state(None, ctx(3))
    graphdef, params = nnx.split(model)
    opt = optax.adam(lr)

    def f(p):
        loss, m, _ = method.loss_with_state(nnx.merge(graphdef, p), state, batch, None, 0.0)
        return loss, m

    def keep(path, g):
        return g if str(getattr(path[0], "key", path[0])) in only else jnp.zeros_like(g)

    @jax.jit
    def step(carry, _):
        p, o = carry
        (_, m), g = jax.value_and_grad(f, has_aux=True)(p)
        u, o = opt.update(jax.tree_util.tree_map_with_path(keep, g), o, p)
        return (optax.apply_updates(p, u), o), m["disc_loss"]

    (params, _), disc = jax.lax.scan(step, (params, opt.init(params)), None, steps)
    return nnx.merge(graphdef, params), np.asarray(disc)


@pytest.mark.slow  # four compiled training loops (~10 s on 2 cores)
def test_dg_dann_discriminator_learns_and_reversal_makes_features_fool_it():
    """The discriminator's loss falls on separable environments; then, the discriminator held
    fixed, steps on the features through the reversal raise its loss (the features become
    less separable to it) far above what the same steps without it (weight 0) do.
    (Not claimed: that a fresh discriminator could not separate them afterwards; maximising a
    multi-class cross-entropy can also just relabel the environments.)"""
    xs, ys = separable_envs()
    batch = env_batch(xs, ys)
    after = {}
    for w in (0.0, 1.0):
        method = build_method({"name": "dg_dann", "disc_width": 16, "weight": w})
        model, disc = train(method, Tiny(3, 4, 2, method), batch, 100, ("disc",))
        assert disc[0] > 0.8 and disc[-1] < 0.1 * disc[0], (disc[0], disc[-1])  # from ~log 3
        _, disc_f = train(method, model, batch, 30, ("backbone", "head"))
        after[w] = (disc[-1], disc_f[-1])
    # from one discriminator, the reversal's feature steps raise its loss past log 3 (it is
    # fooled), several times what the same steps for the labels alone do to it
    assert after[1.0][0] == after[0.0][0]
    assert after[1.0][1] > np.log(3) and after[1.0][1] > 4 * after[0.0][1], after


def test_reversal_sends_minus_weight_times_the_discriminators_gradient_to_the_features():
    xs, ys = separable_envs(4)
    batch = env_batch(xs, ys)
    src = batch["source"]
    for name in ("dg_dann", "cdann"):
        grads = {}
        for w in (0.0, 0.5):
            method = build_method({"name": name, "disc_width": 8, "weight": w})
            model = Tiny(3, 4, 2, method)
            g, params, graphdef = grads_of(method, model, method.init_state(None, ctx(3)),
                                           batch, None)
            grads[w] = nnx.State(g).to_pure_dict()

        def disc_loss(p, graphdef=graphdef, conditional=name == "cdann"):  # by hand
            m = nnx.merge(graphdef, p)
            h = m.features(src["x"])
            h = h + m.class_embed(src["y"]) if conditional else h
            ce = optax.softmax_cross_entropy_with_integer_labels(m.disc(h)[:, :3], src["domain"])
            return jnp.sum(class_balanced_weights(src["y"], 2) * ce) if conditional else ce.mean()

        true = nnx.State(jax.jit(jax.grad(disc_loss))(params)).to_pure_dict()
        # the discriminator descends its loss; the features get -weight x its gradient
        np.testing.assert_allclose(grads[0.5]["disc"]["out"]["kernel"],
                                   true["disc"]["out"]["kernel"], rtol=1e-5, atol=1e-7)
        assert np.any(np.asarray(true["backbone"]["kernel"]) != 0)
        np.testing.assert_allclose(grads[0.5]["backbone"]["kernel"],
                                   grads[0.0]["backbone"]["kernel"]
                                   - 0.5 * true["backbone"]["kernel"], rtol=1e-4, atol=1e-7)


def test_cdann_class_balanced_weights_and_conditional_loss():
    y = jnp.array([0, 0, 0, 1, 2, 2])
    w = np.asarray(class_balanced_weights(y, 4))  # class 3 absent: K = 3 present
    np.testing.assert_allclose(w, [1 / 9] * 3 + [1 / 3] + [1 / 6] * 2, rtol=1e-6)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)
    for c in range(3):  # every class counts 1/K
        np.testing.assert_allclose(w[np.asarray(y) == c].sum(), 1 / 3, rtol=1e-6)
    method = build_method({"name": "cdann", "disc_width": 8})
    xs, ys = separable_envs(4)
    batch = env_batch(xs, ys)
    model = Tiny(3, 4, 2, method)
    _, m, _ = method.loss_with_state(model, method.init_state(None, ctx(3)), batch, None, 0.0)
    src = batch["source"]
    f = model.features(src["x"])
    d = model.disc(f + model.class_embed(src["y"]))[:, :3]
    ce = optax.softmax_cross_entropy_with_integer_labels(d, src["domain"])
    np.testing.assert_allclose(float(m["disc_loss"]),
                               float(jnp.sum(class_balanced_weights(src["y"], 2) * ce)),
                               rtol=1e-5)
