"""Schedules reach their end values at the last step: the lr schedule (with and without
warm-up) and the `progress` the trainer hands to losses (DANN's lambda = 1 - tiny there)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl.errors import JtlError
from jtl.methods import Method
from jtl.methods.adversarial import dann_lambda
from jtl.train.optim import build_optimizer, schedule
from jtl.train.step import init_state, make_step

LR, TOTAL = 0.1, 9
END = LR / 11**0.75  # Ganin & Lempitsky's lr at p = 1


def lrs(total: int = TOTAL, **cfg) -> np.ndarray:
    fn = schedule({"lr": LR, **cfg}, total)
    return np.asarray([float(fn(s)) for s in range(total)])


@pytest.mark.parametrize("warmup", [0, 3])
def test_dann_lr_reaches_its_end_value_at_the_last_step(warmup):
    lr = lrs(schedule="dann", warmup=warmup)
    np.testing.assert_allclose(lr[-1], END, rtol=1e-6)
    np.testing.assert_allclose(lr[warmup], LR, rtol=1e-6)  # the decay starts after warm-up
    # p runs over the steps after warm-up: p = (s - warmup) / (total - warmup - 1)
    p = (np.arange(warmup, TOTAL) - warmup) / (TOTAL - warmup - 1)
    np.testing.assert_allclose(lr[warmup:], LR / (1 + 10 * p) ** 0.75, rtol=1e-6)
    if warmup:
        np.testing.assert_allclose(lr[:warmup], LR * np.arange(warmup) / warmup, rtol=1e-6)


def test_other_schedules_and_bad_warmup():
    np.testing.assert_allclose(lrs(schedule="constant"), LR)
    cos = lrs(schedule="cosine", warmup=2)
    assert cos[2] == pytest.approx(LR) and 0 < cos[-1] < 0.05 * LR
    assert np.all(np.diff(cos[2:]) < 0)
    with pytest.raises(JtlError):
        schedule({"lr": LR, "schedule": "dann", "warmup": TOTAL}, TOTAL)
    with pytest.raises(JtlError):
        schedule({"lr": LR, "schedule": "step"}, TOTAL)


@dataclasses.dataclass(frozen=True)
class Probe(Method):
    """loss = sum of the head's outputs on a ones input: every parameter's gradient is 1, so
    plain SGD moves each by exactly -lr_t; reports the progress it was handed."""

    def loss(self, model, batch, key, progress):
        return model.head(jnp.ones((1, 1))).sum(), {"progress": progress}


class Net(nnx.Module):
    def __init__(self) -> None:
        self.head = nnx.Linear(1, 1, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("warmup", [0, 2])
def test_trainer_step_hands_progress_0_to_1_and_applies_the_lr(warmup):
    graphdef, params = nnx.split(Net())
    params = params.to_pure_dict()
    cfg = {"name": "sgd", "lr": LR, "momentum": None, "weight_decay": 0.0,
           "schedule": "dann", "warmup": warmup}
    tx = build_optimizer(cfg, params, TOTAL, ".*", None)
    step = jax.jit(make_step(graphdef, Probe(), tx, TOTAL))
    state, progress, moved = init_state(params, tx), [], []
    for _ in range(TOTAL):
        before = float(state["params"]["head"]["bias"][0])
        state, metrics = step(state, {}, jax.random.key(0))
        progress.append(float(metrics["progress"]))
        moved.append(before - float(state["params"]["head"]["bias"][0]))
    np.testing.assert_allclose(progress, np.arange(TOTAL) / (TOTAL - 1), rtol=1e-6, atol=0)
    assert progress[-1] == 1.0
    np.testing.assert_allclose(moved, lrs(schedule="dann", warmup=warmup), rtol=1e-5)
    np.testing.assert_allclose(moved[-1], END, rtol=1e-5)
    # DANN's GRL coefficient at the last step: 2 / (1 + e^-10) - 1 = 1 - 9.1e-5
    lam = float(dann_lambda(jnp.float32(progress[-1])))
    assert lam == pytest.approx(1 - 2 / (1 + np.exp(10)), rel=1e-6) and lam < 1
