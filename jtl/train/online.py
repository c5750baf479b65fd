"""Online test-time adaptation: one pass over a target stream, each batch predicted, then
adapted to (TENT's protocol, Wang et al. 2021).

`online: {split: test, order: null, episodic: false}` (conf/online/stream.yaml) turns a
source-free run into a stream: the target split `split` is read once in a fixed order
(`order`: null = as stored, an integer = a permutation of that seed; part of the run's
identity, as every key is), `trainer.batch_size` examples per step, so the run has
ceil(N / batch_size) steps whatever `trainer.steps` says. Each step's predictions, made before
its update and with the step's batch statistics, are scored against the stream's labels,
which no method sees; the score is summed in the train state (checkpointed: a resumed stream
scores each example once) and reported as `online/target/accuracy` beside the usual
evaluation of the final network (`target/test/accuracy`). `episodic: true` resets the network
before every batch (TENT's episodic mode). The last batch is filled up from the stream's start
(one compiled shape); those repeats are not scored, but the update sees them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtl.errors import JtlError
from jtl.methods import Method
from jtl.train.build import Roles

SPLITS = ("train", "val", "test")


def check(online: Mapping[str, Any], roles: Roles, method: Method) -> None:
    """An online run is source-free and label-free: one line naming what is wrong."""
    if any(u.startswith("source/") for u in method.uses) or roles.sources:
        raise JtlError(f"online: a stream run is source-free; method {type(method).__name__} "
                       "or the config reads a source: set source=null and use a method that "
                       "reads only the target (tent, adabn, ...)")
    if "target/y" in method.uses:
        raise JtlError(f"online: method {type(method).__name__} reads target labels; a stream's "
                       "labels only score its predictions")
    split = online.get("split", "test")
    if split not in SPLITS:
        raise JtlError(f"online.split={split!r}: use one of {list(SPLITS)}")
    if roles.target.labels != "all" and split != "test":
        raise JtlError(f"online.split={split}: the target has labels on its test split only")


def stream_roles(online: Mapping[str, Any], roles: Roles, batch_size: int
                 ) -> tuple[Roles, int]:
    """(roles whose target train split is the stream, in its order; the run's step count)."""
    split = getattr(roles.target, online.get("split", "test"))
    order = online.get("order")
    idx = (np.arange(len(split)) if order is None
           else np.random.default_rng([int(order), 0x57AE]).permutation(len(split)))
    target = dataclasses.replace(roles.target, train=split.take(idx))
    return dataclasses.replace(roles, target=target), math.ceil(len(split) / batch_size)


def initial_scores() -> dict[str, jax.Array]:
    return {"correct": jnp.zeros((), jnp.float32), "seen": jnp.zeros((), jnp.float32)}


def summary(scores: Mapping[str, Any]) -> dict[str, float]:
    """`online/target/accuracy` (predictions before each update) and the examples scored."""
    seen = float(scores["seen"])
    return {"online/target/accuracy": float(scores["correct"]) / max(seen, 1.0),
            "online/examples": int(seen)}
