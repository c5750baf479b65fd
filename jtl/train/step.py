"""The pure training functions: one step, and a chunk of steps under `lax.scan`.

State is one pytree {"step", "params", "opt_state"} (+ "method": the method's own state, for
methods that have one: `Method.init_state`); "params" holds every variable of the network,
batch-norm running statistics included: the loss runs the model in training mode and the step
writes the statistics it updated back (`merge_stats`), so they travel, checkpoint and `vmap`
with the weights while the optimizer never touches them (`build_optimizer(fixed=...)`).
A chunk is a pure function of (state, data, run_key), so a later grid can `vmap` it over seeds
and hyper-parameters and a sharded run can split the batch axis without touching method code.
Step t's randomness is `fold_in(run_key, t)`: the same whatever the chunking or a resume.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jtl.domains.pp import Pipeline
from jtl.methods import Method
from jtl.models.base import param_paths
from jtl.train.data import draw, draw_stream, prepare

State = dict[str, Any]


def step_keys(run_key: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(batch key, loss key) of step `step`; the streamed path draws its batches with the same
    batch key, so both paths train on the same examples."""
    key = jax.random.fold_in(run_key, step)
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def init_state(params: Any, tx: optax.GradientTransformation, method_state: Any = None
               ) -> State:
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    if method_state is not None:
        state["method"] = method_state
    return state


def stat_paths(net: nnx.Module) -> list[str]:
    """Paths of the variables that are state, not parameters (batch-norm running statistics)."""
    return param_paths(nnx.state(net, nnx.BatchStat).to_pure_dict())


def merge_stats(params: dict, stats: dict) -> dict:
    """`params` with the leaves present in the (sub-)tree `stats` replaced by its values."""
    if not stats:
        return params
    out = dict(params)
    for k, v in stats.items():
        out[k] = merge_stats(params[k], v) if isinstance(v, dict) else v
    return out


def frozen_norms(net: nnx.Module, freeze: str | None) -> frozenset[tuple]:
    """Module paths of the batch-norm layers whose running statistics `freeze` matches: a
    frozen layer is a fixed function, so it normalises with its running averages and never
    updates them (what `model.eval()` on a frozen PyTorch backbone does)."""
    if not freeze:
        return frozenset()
    return frozenset(path for path, m in net.iter_modules() if isinstance(m, nnx.BatchNorm)
                     and re.fullmatch(freeze, "/".join(map(str, (*path, "mean")))))


def train_model(graphdef: nnx.GraphDef, params: Any, frozen: frozenset[tuple]) -> nnx.Module:
    """The network in training mode (batch statistics in, running averages updated; it is built
    in evaluation mode), batch-norm layers at `frozen` paths in evaluation mode."""
    model = nnx.merge(graphdef, params)
    model.train()
    if frozen:
        for path, m in model.iter_modules():
            if path in frozen:
                m.use_running_average = True
    return model


def make_step(graphdef: nnx.GraphDef, method: Method, tx: optax.GradientTransformation,
              total_steps: int, frozen: frozenset[tuple] = frozenset(),
              per_lane: Callable[[Any], tuple[Method, optax.GradientTransformation]] | None = None
              ) -> Callable:
    """One training step; batch-norm layers at `frozen` paths (`frozen_norms`) stay in
    evaluation mode. `per_lane(hp) -> (method, tx)`: a search lane's method and optimizer at
    the traced hyper-parameters `hp` the step then takes (jtl/train/search.py)."""
    def loss_fn(params, mstate, batch, key, progress, method):
        model = train_model(graphdef, params, frozen)
        if mstate is None:
            loss, metrics = method.loss(model, batch, key, progress)
        else:
            loss, metrics, mstate = method.loss_with_state(model, mstate, batch, key, progress)
        return loss, (metrics, nnx.state(model, nnx.BatchStat).to_pure_dict(), mstate)

    def step(state: State, batch: dict, key: jax.Array, hp: Any = None
             ) -> tuple[State, dict]:
        m, t = (method, tx) if per_lane is None else per_lane(hp)
        # 0 at the first step, exactly 1 at the last (step total_steps - 1): schedules end there.
        progress = state["step"].astype(jnp.float32) / max(total_steps - 1, 1)
        (loss, (metrics, stats, mstate)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["params"], jax.lax.stop_gradient(state.get("method")), batch, key, progress,
            m)
        updates, opt_state = t.update(grads, state["opt_state"], state["params"])
        params = merge_stats(optax.apply_updates(state["params"], updates), stats)
        metrics = {"loss": loss, **metrics}
        new = {"step": state["step"] + 1, "params": params, "opt_state": opt_state}
        if mstate is not None:
            new["method"] = mstate
        return new, metrics

    return step


def make_online_step(step: Callable, graphdef: nnx.GraphDef, frozen: frozenset[tuple],
                     stats_only: bool, episodic: bool) -> Callable:
    """Online test-time adaptation (`online`: TENT's protocol): the step's target batch is the
    next batch of the stream; the network's predictions on it, made before the update and in
    the step's mode (batch statistics), are scored against the stream's labels (which the
    method never sees) and summed in `state["online"]`. A statistics-only method has no loss:
    its step is that forward pass, whose batch statistics are the adaptation (BN adaptation at
    test time). `episodic`: every batch starts from the state before the stream (TENT's
    episodic mode), nothing but the scores carries over."""

    def online_step(state: State, batch: dict, key: jax.Array, labels: jax.Array,
                    valid: jax.Array) -> tuple[State, dict]:
        model = train_model(graphdef, state["params"], frozen)
        logits = model(batch["target"]["x"])
        correct = jnp.sum((jnp.argmax(logits, -1) == labels) * valid)
        if stats_only:
            params = merge_stats(state["params"], nnx.state(model, nnx.BatchStat).to_pure_dict())
            new, metrics = {**state, "step": state["step"] + 1, "params": params}, {}
        else:
            new, metrics = step({k: v for k, v in state.items() if k != "online"}, batch, key)
        if episodic:
            new = {**state, "step": new["step"]}
        seen = jnp.sum(valid)
        new["online"] = {"correct": state["online"]["correct"] + correct,
                         "seen": state["online"]["seen"] + seen}
        return new, {"loss": metrics.get("loss", jnp.zeros(())), **metrics,
                     "online_acc": correct / jnp.maximum(seen, 1.0)}

    return online_step


def make_chunk(step: Callable, batch_size: int, length: int, streamed: bool,
               shard: Callable | None = None,
               pps: dict[str, Pipeline] | None = None, online: bool = False) -> Callable:
    """`chunk(state, data, run_key) -> (state, metrics stacked over steps)`.

    `data` holds stored fields per group (`jtl.train.data.train_groups`); each step draws its
    batch and runs the groups' pipelines `pps` on it (`jtl.train.data.prepare`). `pps` None:
    `data` is already the method's batch layout (tests and benchmarks of the step alone).
    `length == 1` is the plain per-step loop body (no scan: XLA:CPU runs convolutions inside a
    loop body far slower). With `streamed`, `data` is a batch per step stacked on axis 0.
    `shard` places each batch over a device mesh (jtl/train/mesh.py); None: one device.
    `online`: batches are the stream's next ones, in order (`jtl.train.data.draw_stream`), and
    `step` is an online step (`make_online_step`) that also takes their labels and validity.
    `hp`: a search lane's traced hyper-parameters, handed to the step (None: none).
    """

    def one(state, data, run_key, hp):
        batch_key, loss_key = step_keys(run_key, state["step"])
        extra: tuple = ()
        if online:
            batch, labels, valid = draw_stream(data, state["step"], batch_size)
            extra = (labels, valid)
        else:
            batch = data if streamed else draw(data, batch_key, batch_size)
        if pps is not None:
            batch = prepare(batch, pps, batch_key)
        if shard is not None:
            batch = shard(batch)
        return step(state, batch, loss_key, *extra, **({} if hp is None else {"hp": hp}))

    def chunk(state, data, run_key, hp=None):
        if length == 1:
            data1 = jax.tree_util.tree_map(lambda a: a[0], data) if streamed else data
            state, m = one(state, data1, run_key, hp)
            return state, jax.tree_util.tree_map(lambda v: v[None], m)

        def body(state, xs):
            return one(state, xs if streamed else data, run_key, hp)

        return jax.lax.scan(body, state, data if streamed else None, length=length)

    return chunk
