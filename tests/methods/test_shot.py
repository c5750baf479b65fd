"""SHOT: centroid pseudo-labels as SHOT's obtain_label computes them, the head frozen,
information maximisation; and the source recipe's label smoothing."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf

from jtl import rundir
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.methods.shot import centroid_labels
from jtl.methods.source_free import embed, information_maximisation
from jtl.rundir import load_config
from jtl.train.build import build_all
from tests.conftest import compose_cfg
from tests.methods.method_testkit import Tiny, tiny
from tests.methods.source_free_kit import adapted, changed, params_at, source_run

BIG = 20.0  # logits this far apart: softmax weights one-hot to 1e-8


def test_centroids_relabel_an_example_nearer_the_other_class():
    """Four 1-d examples x = -2, -1, 1, 3 (features [x, 1] after SHOT's appended 1, then
    L2-normalised); the head calls the first three class 0. Centroids: c0 = the mean of
    [-2,1]/sqrt5, [-1,1]/sqrt2, [1,1]/sqrt2 = [-0.298, 0.620], c1 = [3,1]/sqrt10. The example
    x = 1 has cosine 0.33 to c0 and 0.89 to c1: relabelled 1; the refinement keeps it."""
    feats = np.array([[-2.0], [-1.0], [1.0], [3.0]])
    logits = np.array([[BIG, 0], [BIG, 0], [BIG, 0], [0, BIG]])
    u = np.array([[-2, 1] / np.sqrt(5), [-1, 1] / np.sqrt(2), [1, 1] / np.sqrt(2)])
    c0, c1 = u.mean(0), np.array([3, 1]) / np.sqrt(10)
    cos = [u[2] @ c / np.linalg.norm(c) for c in (c0, c1)]
    assert cos[0] == pytest.approx(0.331, abs=1e-3) and cos[1] == pytest.approx(0.894, abs=1e-3)
    np.testing.assert_array_equal(centroid_labels(feats, logits), [0, 0, 1, 1])
    np.testing.assert_array_equal(centroid_labels(feats, logits, rounds=1), [0, 0, 1, 1])


def test_soft_weights_then_one_hard_round():
    """Round one weighs every example by its softmax; round two by its hard label. Two
    examples at [1, 0] and [0, 1] (features 2-d, plus the 1); the head is unsure of the first
    (p = 0.6 / 0.4) and sure of the second (class 1). Soft centroids: c0 is the first example
    alone up to 0.4 of it in c1, so the first stays 0 and the second 1."""
    feats = np.array([[1.0, 0.0], [0.0, 1.0]])
    logits = np.array([[np.log(1.5), 0.0], [0.0, BIG]])
    f = np.array([[1, 0, 1], [0, 1, 1]]) / np.sqrt(2)
    w = np.array([[0.6, 0.4], [0.0, 1.0]])
    c = w.T @ f / w.sum(0)[:, None]
    first = (f @ c.T / np.linalg.norm(c, axis=1)).argmax(1)
    np.testing.assert_array_equal(first, [0, 1])
    np.testing.assert_array_equal(centroid_labels(feats, logits), first)


def test_a_class_nobody_predicts_gets_no_centroid():
    """Three classes, every example predicted 0: class 1 and 2 have no member, so no centroid
    (SHOT's object code: classes with more than `threshold` = 0 members)."""
    feats = np.random.default_rng(0).normal(size=(5, 4))
    logits = np.tile([BIG, 0.0, 0.0], (5, 1))
    np.testing.assert_array_equal(centroid_labels(feats, logits), np.zeros(5))


def test_information_maximisation_on_hand_made_logits():
    """p1 = (3/4, 1/4), p2 = (1/2, 1/2): mean entropy (H(p1) + log 2) / 2, diversity the
    entropy of the marginal (5/8, 3/8) (SHOT's +1e-5 in the log), loss their difference."""
    logits = jnp.array([[np.log(3.0), 0.0], [0.0, 0.0]])
    im, ent, div = information_maximisation(logits)
    h1 = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    m = np.array([0.625, 0.375])
    assert float(ent) == pytest.approx((h1 + np.log(2)) / 2, rel=1e-5)
    assert float(div) == pytest.approx(-np.sum(m * np.log(m + 1e-5)), rel=1e-5)
    assert float(im) == pytest.approx(float(ent) - float(div), rel=1e-6)


def test_loss_reads_the_pseudo_labels_by_index():
    """loss = IM + beta CE against state['label'][index], on the tiny network."""
    method = build_method({"name": "shot", "beta": 0.3})
    graphdef, params = tiny(method)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4)), jnp.float32)
    state = {"label": jnp.array([1, 0, 1, 1, 0], jnp.int32)}
    batch = {"target": {"x": x, "index": jnp.array([4, 0, 2])}}
    model = nnx.merge(graphdef, params)
    assert isinstance(model, Tiny)
    loss, metrics, out = method.loss_with_state(model, state, batch, None, 0.0)
    logits = model.head(model.features(x))
    logp = np.asarray(jnp.log(jnp.exp(logits) / jnp.exp(logits).sum(1, keepdims=True)))
    ce = -np.mean(logp[np.arange(3), [0, 1, 1]])
    assert float(metrics["pseudo_loss"]) == pytest.approx(ce, rel=1e-5)
    assert float(loss) == pytest.approx(float(information_maximisation(logits)[0]) + 0.3 * ce,
                                        rel=1e-5)
    assert out is state


def test_a_run_freezes_the_head_and_relabels_from_the_model_of_each_interval(tmp_path):
    """The head is the source model's after the run and everything else trained; the
    pseudo-labels held at step 20 are `centroid_labels` of the step-20 model's features and
    logits over the whole target train split, one per example."""
    src = source_run(tmp_path)
    s = adapted(src, tmp_path / "shot", "method=shot", "method.interval=20",
                "trainer.keep_checkpoints=3")
    assert s["status"] == "completed"
    moved = changed(params_at(src)["params"], params_at(tmp_path / "shot")["params"])
    assert not any(v for p, v in moved.items() if p.startswith("head/"))
    assert all(v for p, v in moved.items() if not p.startswith("head/")), moved
    built = build_all(load_config(tmp_path / "shot"))
    graphdef, _ = nnx.split(built.net)
    target = built.roles.target.train
    at20 = params_at(tmp_path / "shot", 20)
    np.testing.assert_array_equal(at20["method"]["label"],
                                  centroid_labels(*embed(graphdef, at20["params"], target)))
    assert at20["method"]["label"].shape == (len(target),)


def test_shot_im_has_no_state_and_bad_values_are_refused():
    assert build_method({"name": "shot", "beta": 0.0}).boundary_every is None
    with pytest.raises(JtlError, match="interval"):
        build_method({"name": "shot", "interval": 0})
    with pytest.raises(JtlError, match="label_smoothing"):
        build_method({"name": "source_only", "label_smoothing": 1.0})


def test_label_smoothing_is_the_smoothed_cross_entropy():
    """eps = 0.1, K = 2: -(1 - eps + eps/K) log p_y - (eps/K) log p_other, per example."""
    method = build_method({"name": "source_only", "label_smoothing": 0.1})
    graphdef, params = tiny(method)
    model = nnx.merge(graphdef, params)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(4, 4)), jnp.float32)
    y = jnp.array([0, 1, 1, 0])
    loss, metrics = method.loss(model, {"source": {"x": x, "y": y}}, None, 0.0)
    logits = np.asarray(model.head(model.features(x)), np.float64)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    yy = np.asarray(y)
    hand = -np.mean(0.95 * logp[np.arange(4), yy] + 0.05 * logp[np.arange(4), 1 - yy])
    assert float(loss) == pytest.approx(hand, rel=1e-5)
    assert float(metrics["cls_loss"]) == pytest.approx(-np.mean(logp[np.arange(4), yy]),
                                                       rel=1e-5)
    plain = build_method({"name": "source_only"})
    assert float(plain.loss(model, {"source": {"x": x, "y": y}}, None, 0.0)[0]) == \
        pytest.approx(-np.mean(logp[np.arange(4), yy]), rel=1e-5)


def test_label_smoothing_null_keeps_the_old_identity():
    """A source_only run made before the key existed has the fingerprint of one with
    label_smoothing: null (null is left out of the identity)."""
    cfg = OmegaConf.to_container(compose_cfg(["method=source_only"]), resolve=True)
    assert cfg["method"] == {"name": "source_only", "label_smoothing": None}
    old = {**cfg, "method": {"name": "source_only"}}
    assert rundir.fingerprint(cfg) == rundir.fingerprint(old)
