"""Online test-time adaptation (jtl/train/online.py): one pass over the target stream in a
fixed order, each batch's predictions made before its update are the ones scored, by the
trainer against labels no method sees; resumable; episodic resets."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl.errors import JtlError
from jtl.methods.base import METHODS, Method
from jtl.methods.transductive import entropy
from jtl.train import train_and_evaluate
from jtl.train.build import build_all, initial_params
from jtl.train.checkpoint import manager
from jtl.train.loop import RunInterrupted
from jtl.train.online import stream_roles
from jtl.train.optim import build_optimizer
from jtl.train.step import init_state, make_step, stat_paths, train_model
from tests.conftest import compose_cfg, interrupt_once


@dataclasses.dataclass(frozen=True)
class Entropy(Method):
    """TENT's loss on every parameter: enough to move predictions between batches."""

    uses = frozenset({"target/x"})

    def loss(self, model, batch, key, progress):
        h = entropy(model(batch["target"]["x"])).mean()
        return h, {"entropy": h}


@dataclasses.dataclass(frozen=True)
class BatchStats(Method):
    """Statistics only: online, its step is the forward pass with the batch's statistics."""

    uses = frozenset({"target/x"})
    trainable: ClassVar[str | None] = None


BASE = ["domain@target=sklearn_digits", "target.shifts=[{name:rotate,degrees:30}]", "model=mlp",
        "model.hidden=[32]", "model.norm=batch", "trainer=debug", "trainer.progress=false",
        "trainer.tensorboard=false"]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    src = tmp_path_factory.mktemp("online") / "source"
    train_and_evaluate(compose_cfg([*BASE, "domain@source=sklearn_digits"]), src)
    return src


@pytest.fixture
def methods(monkeypatch):
    monkeypatch.setitem(METHODS._items, "test_entropy", Entropy)
    monkeypatch.setitem(METHODS._items, "test_batch_stats", BatchStats)


def online_cfg(src, method, *extra):
    cfg = compose_cfg([*BASE, "source=null", f"init_from={src}", "online=stream",
                       "optim=sgd", "optim.lr=0.5", "optim.schedule=constant",
                       "trainer.batch_size=64", "trainer.eval_every=1000",
                       "trainer.log_every=1000", "trainer.checkpoint_every=1000", *extra])
    cfg.method = {"name": method}
    return cfg


def hand_scores(cfg):
    """The stream replayed by hand: predictions of the parameters before each step's update
    (training mode: the batch's statistics), then the trainer's own step applied."""
    built = build_all(cfg)
    roles, total = stream_roles(cfg["online"], built.roles, 64)
    params = initial_params(cfg, roles.target, built.method, built.net)
    graphdef, _ = nnx.split(built.net)
    stats = stat_paths(built.net)
    tx = build_optimizer(dict(cfg["optim"]), params, total, ".*", None, fixed=stats)
    step = jax.jit(make_step(graphdef, built.method, tx, total))
    state = init_state(jax.tree_util.tree_map(jnp.asarray, params), tx)
    predict = jax.jit(lambda p, x: train_model(graphdef, p, frozenset())(x))
    stream, pp = roles.target.train, roles.target.train.pp
    correct = 0
    for t in range(total):
        idx = np.arange(t * 64, t * 64 + 64) % len(stream)
        x = pp({"image": stream.fields["image"][idx]})
        logits = predict(state["params"], x)
        valid = np.arange(t * 64, t * 64 + 64) < len(stream)
        correct += int(((np.asarray(logits).argmax(1) == stream.y[idx]) & valid).sum())
        state, _ = step(state, {"target": {"x": x}}, jax.random.key(t))
    return correct / len(stream), total, len(stream)


def test_online_scores_the_predictions_made_before_each_update(tmp_path, source_run, methods):
    cfg = online_cfg(source_run, "test_entropy")
    s = train_and_evaluate(cfg, tmp_path / "tent")
    acc, total, n = hand_scores(cfg)
    assert s["step"] == total == math.ceil(n / 64)  # one pass, whatever trainer.steps says
    assert s["online/examples"] == n
    assert s["online/target/accuracy"] == pytest.approx(acc, abs=1.5 / n)
    # The adapted network's own evaluation differs from the online score: predictions of
    # later parameters would have changed earlier answers.
    assert s["target/test/accuracy"] != pytest.approx(s["online/target/accuracy"], abs=1e-9)


def test_stream_order_is_config_and_episodic_resets(tmp_path, source_run, methods):
    a = train_and_evaluate(online_cfg(source_run, "test_entropy", "online.order=3"),
                           tmp_path / "shuffled")
    b = train_and_evaluate(online_cfg(source_run, "test_entropy"), tmp_path / "stored")
    assert a["fingerprint"] != b["fingerprint"]
    assert a["online/target/accuracy"] != b["online/target/accuracy"]
    ep = train_and_evaluate(online_cfg(source_run, "test_entropy", "online.episodic=true"),
                            tmp_path / "episodic")
    stats = train_and_evaluate(online_cfg(source_run, "test_batch_stats"), tmp_path / "bn")
    # Episodic with one step a batch: each batch predicted by the source network with that
    # batch's statistics, i.e. test-time BN adaptation, which the statistics-only run is.
    assert ep["online/target/accuracy"] == pytest.approx(stats["online/target/accuracy"],
                                                         abs=1e-9)
    with manager(tmp_path / "episodic" / "checkpoints") as m:
        ep_params = m.restore(m.latest_step())["params"]
    with manager(source_run / "checkpoints") as m:
        src_params = m.restore(m.latest_step())["params"]
    for x, y in zip(jax.tree_util.tree_leaves(ep_params), jax.tree_util.tree_leaves(src_params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # reset every batch


def test_an_interrupted_stream_resumes_scoring_each_example_once(tmp_path, source_run,
                                                                 methods, monkeypatch):
    cfg = online_cfg(source_run, "test_entropy", "trainer.checkpoint_every=2",
                     "trainer.log_every=2", "trainer.eval_every=2")
    straight = train_and_evaluate(cfg, tmp_path / "straight")
    interrupt_once(monkeypatch, 3)
    with pytest.raises(RunInterrupted):
        train_and_evaluate(cfg, tmp_path / "resumed")
    resumed = train_and_evaluate(cfg, tmp_path / "resumed")
    for k in ("online/target/accuracy", "online/examples", "target/test/accuracy"):
        assert resumed[k] == straight[k], k


def test_online_runs_are_source_free_and_label_free(tmp_path, source_run, methods):
    cfg = compose_cfg([*BASE, "domain@source=sklearn_digits", f"init_from={source_run}",
                       "online=stream"])
    with pytest.raises(JtlError, match="source-free"):
        train_and_evaluate(cfg, tmp_path / "with_source")
    with pytest.raises(JtlError, match=r"online\.split"):
        train_and_evaluate(compose_cfg([*BASE, "source=null", "online=stream",
                                        "online.split=all"]), tmp_path / "bad_split")
