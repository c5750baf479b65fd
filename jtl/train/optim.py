"""Optimizer from `conf/optim/*.yaml`, with freezing and parameter groups as optax labels.

Every parameter gets one label by regex on its path (`trainable_labels`): `frozen`, a group of
the transfer recipe (`conf/transfer/*.yaml`, first matching group wins) or `train`, and
`optax.multi_transform` gives each label its own transform. A group may scale the learning
rate (discriminative fine-tuning), start late (lp_ft: the backbone is held fixed while the
head is linear-probed) and add L2 terms (L2-SP: toward the initial, pretrained values).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jtl.errors import JtlError
from jtl.models.base import param_paths


def num(v: Any) -> Any:
    """A hyper-parameter as a float, or as it is when traced (a search lane's per-lane value
    inside the compiled step: jtl/train/search.py); optax computes with either."""
    return v if isinstance(v, jax.Array) else float(v)


def schedule(cfg: Mapping[str, Any], total_steps: int) -> optax.Schedule:
    """Learning rate as a function of optax's update count s = 0 .. total_steps - 1 (the count
    of updates before the current one: the last step sees s = total_steps - 1).

    `warmup` steps ramp linearly from 0 to lr; the main schedule then runs over the remaining
    n = total_steps - warmup steps with its own progress p = s' / (n - 1), s' = s - warmup, so
    `dann` (Ganin & Lempitsky 2015, lr / (1 + 10 p)^0.75) starts at lr after the warm-up and
    ends at lr / 11^0.75 exactly at the last step, with or without warm-up. `cosine` decays to 0
    at s' = n, one step after the last (a last step at lr 0 would be wasted).
    """
    lr, kind, warmup = num(cfg["lr"]), cfg.get("schedule", "constant"), int(cfg.get("warmup", 0))
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


@dataclasses.dataclass(frozen=True)
class Group:
    """A parameter group of a transfer recipe (`transfer.groups: [{params: 'head/.*', ...}]`).

    `lr_mult` scales the learning rate; the group is held fixed (no update, no optimizer
    state change) for the first `start` fraction of the steps, then runs its own schedule over
    the rest; `l2_init` adds alpha * (w - w0) to the gradient (L2-SP's alpha/2 ||w - w0||^2,
    w0 the values at step 0: the pretrained ones); `l2` adds beta * w (L2-SP's beta on new
    parameters)."""

    params: str
    lr_mult: float = 1.0
    start: float = 0.0
    l2_init: float = 0.0
    l2: float = 0.0

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> Group:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown or "params" not in cfg:
            raise JtlError(f"transfer.groups entry {dict(cfg)}: needs `params` (a regex) and "
                           f"takes only {sorted(known)}")
        group = cls(**cfg)
        if not 0.0 <= group.start < 1.0 or group.lr_mult < 0 or group.l2 < 0 or group.l2_init < 0:
            raise JtlError(f"transfer.groups entry {dict(cfg)}: start in [0, 1), lr_mult, l2 "
                           "and l2_init >= 0")
        return group


def trainable_labels(params: Any, trainable: str, freeze: str | None,
                     groups: Sequence[Group] = (), fixed: Collection[str] = ()) -> Any:
    """A label per parameter: 'frozen' unless its path fully matches `trainable` and does not
    match `freeze` (regexes on paths like `backbone/blocks/0/conv/kernel`); a trainable one is
    'group<i>' for the first group whose `params` it matches, else 'train'. Paths in `fixed`
    (batch-norm statistics: state the step writes, not parameters) are always 'frozen'."""
    paths = param_paths(params)
    fixed = set(fixed)
    labels = []
    for p in paths:
        if p in fixed or not re.fullmatch(trainable, p) or (freeze and re.fullmatch(freeze, p)):
            labels.append("frozen")
            continue
        hit = next((i for i, g in enumerate(groups) if re.fullmatch(g.params, p)), None)
        labels.append("train" if hit is None else f"group{hit}")
    if all(label == "frozen" for label in labels) and freeze != ".*":
        raise JtlError(f"no parameter is trainable: trainable='{trainable}', freeze='{freeze}'. "
                       f"Paths look like: {paths[:3]}")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), labels)


def base_optimizer(cfg: Mapping[str, Any], lr: optax.Schedule) -> optax.GradientTransformation:
    """`optim.name` with its options, at learning rate `lr`."""
    name, wd = cfg["name"], num(cfg.get("weight_decay", 0.0))
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
    return tx


class ToInitState(NamedTuple):
    init: Any  # the parameters at step 0


def l2_toward_init(alpha: float) -> optax.GradientTransformation:
    """g + alpha (w - w0): the gradient of alpha/2 ||w - w0||^2 (L2-SP, Li et al. 2018), w0
    held in the optimizer state, so it is checkpointed and a resumed run pulls toward the same
    pretrained values."""

    def init(params):
        return ToInitState(jax.tree_util.tree_map(jnp.array, params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("l2_toward_init needs params")
        return jax.tree_util.tree_map(lambda g, w, w0: g + alpha * (w - w0), updates, params,
                                      state.init), state

    return optax.GradientTransformation(init, update)


class HoldState(NamedTuple):
    count: jax.Array
    inner: Any


def hold_until(start: int, inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Zero updates, and `inner`'s state untouched, for the first `start` steps; then `inner`
    (whose own schedules count from 0 there). lp_ft's second phase as a transform, no loop."""

    def init(params):
        return HoldState(jnp.zeros((), jnp.int32), inner.init(params))

    def update(updates, state, params=None):
        def run(_):
            return inner.update(updates, state.inner, params)

        def hold(_):
            return jax.tree_util.tree_map(jnp.zeros_like, updates), state.inner

        new, inner_state = jax.lax.cond(state.count >= start, run, hold, None)
        return new, HoldState(state.count + 1, inner_state)

    return optax.GradientTransformation(init, update)


def group_optimizer(cfg: Mapping[str, Any], total_steps: int,
                    group: Group) -> optax.GradientTransformation:
    """A group's transform: its L2 terms, then the optimizer at lr_mult x the schedule over the
    steps it runs."""
    start = round(group.start * total_steps)
    lr = schedule(cfg, total_steps - start)
    tx = base_optimizer(cfg, lr if group.lr_mult == 1.0
                        else (lambda s: group.lr_mult * lr(s)))
    terms = ([l2_toward_init(group.l2_init)] if group.l2_init else []) + (
        [optax.add_decayed_weights(group.l2)] if group.l2 else [])
    if terms:
        tx = optax.chain(*terms, tx)
    return hold_until(start, tx) if start else tx


def build_optimizer(cfg: Mapping[str, Any], params: Any, total_steps: int, trainable: str,
                    freeze: str | None, groups: Sequence[Mapping[str, Any]] = (),
                    fixed: Collection[str] = ()) -> optax.GradientTransformation:
    groups = [Group.from_cfg(g) for g in groups]
    for g in groups:
        try:
            re.compile(g.params)
        except re.error as e:
            raise JtlError(f"transfer.groups: params='{g.params}' is not a valid regex ({e})") \
                from e
    labels = trainable_labels(params, trainable, freeze, groups, fixed)
    transforms = {"train": base_optimizer(cfg, schedule(cfg, total_steps)),
                  "frozen": optax.set_to_zero()}
    transforms.update({f"group{i}": group_optimizer(cfg, total_steps, g)
                       for i, g in enumerate(groups)})
    return optax.multi_transform(transforms, labels)
