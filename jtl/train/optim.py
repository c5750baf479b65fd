"""Optimizer from `conf/optim/*.yaml`, with freezing as an optax mask on parameter paths."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jtl.errors import JtlError
from jtl.models.base import param_paths


def schedule(cfg: Mapping[str, Any], total_steps: int) -> optax.Schedule:
    """Learning rate as a function of optax's update count s = 0 .. total_steps - 1 (the count
    of updates before the current one: the last step sees s = total_steps - 1).

    `warmup` steps ramp linearly from 0 to lr; the main schedule then runs over the remaining
    n = total_steps - warmup steps with its own progress p = s' / (n - 1), s' = s - warmup, so
    `dann` (Ganin & Lempitsky 2015, lr / (1 + 10 p)^0.75) starts at lr after the warm-up and
    ends at lr / 11^0.75 exactly at the last step, with or without warm-up. `cosine` decays to 0
    at s' = n, one step after the last (a last step at lr 0 would be wasted).
    """
    lr, kind, warmup = float(cfg["lr"]), cfg.get("schedule", "constant"), int(cfg.get("warmup", 0))
    if not 0 <= warmup < max(total_steps, 1):
        raise JtlError(f"optim.warmup must be in [0, trainer.steps), got {warmup} "
                       f"with {total_steps} steps")
    main_steps = total_steps - warmup
    if kind == "constant":
        main = optax.constant_schedule(lr)
    elif kind == "cosine":
        main = optax.cosine_decay_schedule(lr, max(main_steps, 1))
    elif kind == "dann":
        last = max(main_steps - 1, 1)
        main = lambda s: lr / (1.0 + 10.0 * jnp.minimum(s / last, 1.0)) ** 0.75  # noqa: E731
    else:
        raise JtlError(f"unknown optim.schedule '{kind}': use constant, cosine or dann")
    if warmup:
        return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])
    return main


def trainable_labels(params: Any, trainable: str, freeze: str | None) -> Any:
    """'train' or 'frozen' per parameter: trainable if its path fully matches `trainable` and
    does not match `freeze` (both regexes on paths like `backbone/blocks/0/conv/kernel`)."""
    paths = param_paths(params)
    labels = [
        "train" if re.fullmatch(trainable, p) and not (freeze and re.fullmatch(freeze, p))
        else "frozen"
        for p in paths
    ]
    if "train" not in labels:
        raise JtlError(f"no parameter is trainable: trainable='{trainable}', freeze='{freeze}'. "
                       f"Paths look like: {paths[:3]}")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), labels)


def build_optimizer(cfg: Mapping[str, Any], params: Any, total_steps: int, trainable: str,
                    freeze: str | None) -> optax.GradientTransformation:
    lr = schedule(cfg, total_steps)
    name, wd = cfg["name"], float(cfg.get("weight_decay", 0.0))
    if name == "adam":
        tx = optax.adamw(lr, b1=float(cfg.get("b1", 0.9)), weight_decay=wd)
    elif name == "sgd":
        tx = optax.chain(optax.add_decayed_weights(wd),
                         optax.sgd(lr, momentum=cfg.get("momentum"),
                                   nesterov=bool(cfg.get("nesterov", False))))
    else:
        raise JtlError(f"unknown optim.name '{name}': use adam or sgd")
    if cfg.get("clip_norm"):
        tx = optax.chain(optax.clip_by_global_norm(float(cfg["clip_norm"])), tx)
    labels = trainable_labels(params, trainable, freeze)
    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
