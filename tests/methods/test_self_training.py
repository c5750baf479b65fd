"""Self-training: only confident target predictions count, against their own (fixed) argmax;
target labels are never read."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from method_testkit import evaluate, make_batch, tiny

from jtl.errors import JtlError
from jtl.methods.self_training import SelfTraining, pseudo_label_loss

LOGITS = jnp.asarray([[5.0, 0.0], [0.2, 0.0], [-4.0, 1.0]])  # p_max: 0.993, 0.550, 0.993

# jitted once each (eager jax compiles op by op)
loss_fn = jax.jit(pseudo_label_loss, static_argnums=1)
grad_fn = jax.jit(jax.grad(lambda z, t: pseudo_label_loss(z, t)[0]), static_argnums=1)


def test_uses_no_target_labels():
    assert "target/y" not in SelfTraining.uses
    # make_batch has no target labels at all: a read would be a KeyError
    loss, _, _ = evaluate(SelfTraining(), *tiny(SelfTraining()), make_batch())
    assert np.isfinite(float(loss))


def test_confident_samples_summed_and_divided_by_the_batch_size():
    # FixMatch: sum over the 2 confident rows / B (= 3), not / the confident count (2)
    loss, frac = loss_fn(LOGITS, 0.9)
    logp = jax.nn.log_softmax(LOGITS)
    np.testing.assert_allclose(loss, -(logp[0, 0] + logp[2, 1]) / 3, rtol=1e-5)
    np.testing.assert_allclose(frac, 2 / 3, rtol=1e-6)
    # the unconfident row neither changes the loss nor receives a gradient
    other = LOGITS.at[1].set(jnp.asarray([0.1, 0.3]))
    np.testing.assert_allclose(loss_fn(other, 0.9)[0], loss, rtol=1e-5)
    g = grad_fn(LOGITS, 0.9)
    np.testing.assert_array_equal(g[1], 0.0)
    # confident rows: (softmax - onehot(pseudo-label)) / B, pseudo-labels held fixed
    p = jax.nn.softmax(LOGITS)
    np.testing.assert_allclose(g[0], (p[0] - jnp.asarray([1.0, 0.0])) / 3, rtol=1e-5)
    np.testing.assert_allclose(g[2], (p[2] - jnp.asarray([0.0, 1.0])) / 3, rtol=1e-5)


def test_one_confident_sample_weighs_one_batch_share():
    # a confident sample's contribution does not depend on how many others are confident
    one = LOGITS.at[2].set(jnp.asarray([0.0, 0.1]))  # only row 0 confident
    logp = jax.nn.log_softmax(one)
    loss, frac = loss_fn(one, 0.9)
    np.testing.assert_allclose(loss, -logp[0, 0] / 3, rtol=1e-5)
    np.testing.assert_allclose(frac, 1 / 3, rtol=1e-6)


def test_safe_when_nothing_is_confident():
    loss, frac = loss_fn(LOGITS, 0.999)
    g = grad_fn(LOGITS, 0.999)
    assert float(loss) == 0.0 and float(frac) == 0.0
    np.testing.assert_array_equal(g, 0.0)


def test_method_total_is_ce_plus_weighted_pseudo_loss():
    # two classes: max p >= 0.5 always, so every target sample is pseudo-labeled
    method = SelfTraining(weight=0.4, threshold=0.5)
    graphdef, params = tiny(method)
    loss, metrics, _ = evaluate(method, graphdef, params, make_batch())
    assert float(metrics["pseudo_frac"]) == 1.0
    np.testing.assert_allclose(loss, metrics["cls_loss"] + 0.4 * metrics["pseudo_loss"],
                               rtol=1e-6)
    with pytest.raises(JtlError):
        SelfTraining(threshold=1.5)


def _ckpt(run_dir, step):
    from jtl.train.checkpoint import manager

    with manager(run_dir / "checkpoints") as m:
        return m.restore(step)


RELABEL = ["method=self_training", "method.relabel_every=10", "method.threshold=0.5",
           "target.shifts=[invert]", "trainer.steps=20", "trainer.eval_every=10",
           "trainer.log_every=10", "trainer.checkpoint_every=10", "trainer.keep_checkpoints=3"]


def test_relabel_every_holds_whole_split_pseudo_labels_in_checkpointed_state(tmp_path,
                                                                            fast_cfg):
    """The method's state: pseudo-labels of every target train example, computed by the
    boundary hook from the model of step 10 over the whole split, fixed until the next relabel,
    checkpointed with the parameters; the step reads them by example index."""
    from flax import nnx

    from jtl.rundir import load_config
    from jtl.train import train_and_evaluate
    from jtl.train.build import build_all
    from jtl.train.evaluate import make_predict

    cfg = fast_cfg(*RELABEL)
    s = train_and_evaluate(cfg, tmp_path / "run")
    assert s["status"] == "completed"
    at10, at20 = _ckpt(tmp_path / "run", 10), _ckpt(tmp_path / "run", 20)
    s_cfg = load_config(tmp_path / "run")
    built = build_all(s_cfg)
    target = built.roles.target.train
    graphdef, _ = nnx.split(built.net)
    logits = make_predict(graphdef)(at10["params"], target)
    assert s_cfg["method"]["relabel_every"] == 10
    np.testing.assert_array_equal(at10["method"]["label"], logits.argmax(1))
    np.testing.assert_array_equal(at10["method"]["confident"],
                                  jax.nn.softmax(logits).max(1) >= 0.5)
    assert at10["method"]["label"].shape == (len(target),)
    np.testing.assert_array_equal(at20["method"]["label"], at10["method"]["label"])  # held


def test_relabelled_run_resumes_its_state_bit_for_bit(tmp_path, fast_cfg, monkeypatch):
    """Interrupted after step 10 and resumed, the run ends where an uninterrupted one ends:
    its pseudo-labels came back from the checkpoint (recomputing them from the initial
    parameters, as a fresh start does, would train on other targets)."""
    from jtl.train import train_and_evaluate
    from jtl.train.loop import RunInterrupted
    from tests.conftest import interrupt_once

    cfg = fast_cfg(*RELABEL)
    train_and_evaluate(cfg, tmp_path / "straight")
    interrupt_once(monkeypatch, 10)
    with pytest.raises(RunInterrupted):
        train_and_evaluate(cfg, tmp_path / "resumed")
    train_and_evaluate(cfg, tmp_path / "resumed")
    a, b = _ckpt(tmp_path / "straight", 20), _ckpt(tmp_path / "resumed", 20)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_relabel_every_is_checked():
    with pytest.raises(JtlError, match="relabel_every"):
        SelfTraining(relabel_every=0)
    assert SelfTraining(relabel_every=5).boundary_every == 5
    assert SelfTraining().boundary_every is None
