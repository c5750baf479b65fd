"""The training loop: chunks of compiled steps between marks, and what happens at a mark.

A training is a `Program`, what is fixed for the whole run (config, seed lanes, method,
domains, network graph, optimizer, the train data with its pipelines, the compiled chunks by
length), and a `LoopState`, what changes (the device train state, the step reached, the
metrics and health flags of chunks not yet read, the lanes still alive, the last
checkpoint). Every function here takes both explicitly and updates the loop state: nothing
is captured in a closure, so each stage reads, tests and reuses on its own.

Marks are the steps where a chunk must end: evaluations, logs, checkpoints, the method's
`boundary_every`, the last step. Between two marks `advance` runs chunks of `steps_per_call`
steps, reading each call's health flag one call late (no stall on the device); at a mark
`at_mark` reads the rest, runs the method's hook, writes the logged and evaluated row and
saves the checkpoints. A statistics-only method has one mark, the last step, and no step.

Several seeds of one config train as lanes of one program (`vmapped`): a leading seed axis on
the state, the keys and streamed batches; a lane whose health flag drops has diverged and
ends alone (`Lane.failed`) while the others go on. A search's lanes also carry their traced
hyper-parameters (`Program.hparams`, stacked), the step's `hp`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jtl.errors import JtlError
from jtl.methods import Method
from jtl.methods.base import Boundary
from jtl.train import checkpoint as ckpt
from jtl.train import distributed
from jtl.train import mesh as meshes
from jtl.train.build import Roles, same_label_space
from jtl.train.data import STREAM_LABEL, group_names, host_batches, train_groups
from jtl.train.evaluate import make_eval
from jtl.train.faults import inject_fault
from jtl.train.lanes import Lane, lane_state, stack
from jtl.train.step import make_chunk, step_keys

log = logging.getLogger("jtl")
# Above this many bytes of train arrays, batches are streamed from the host.
DEVICE_DATA_LIMIT = 2 << 30


def steps_per_call(cfg: Mapping[str, Any], runs_conv: bool) -> int:
    """`auto`: chunks up to the evaluation interval (at most 500 steps), except per-step on
    XLA:CPU for networks that run lax.conv there (`jtl.train.backend.runs_conv`: ResNet),
    which is far slower inside a scan. LeNet's convolutions are im2col on CPU and scan as fast
    as they step, so it is chunked too (benchmarks/README.md, benchmarks/trainer_speed.py)."""
    value = cfg["steps_per_call"]
    if value != "auto":
        return max(int(value), 1)
    if jax.default_backend() == "cpu" and runs_conv:
        return 1
    return min(int(cfg["eval_every"]), 500)


def boundaries(total: int, every: list[int]) -> list[int]:
    """Steps where a chunk must end: evaluations, checkpoints, logs, the last step."""
    marks = {total}
    for e in every:
        if e > 0:
            marks.update(range(e, total, e))
    return sorted(marks)


def guarded(chunk: Any, max_loss: float | None) -> Any:
    """The chunk plus one health flag: all metrics and parameters finite, |loss| <= max_loss.
    One reduced scalar per compiled call, so divergence is caught where it happens."""

    def run(state, data, run_key, hp=None):
        state, metrics = chunk(state, data, run_key, hp)
        ok = jnp.isfinite(optax.global_norm(state["params"]))
        for v in metrics.values():
            ok &= jnp.all(jnp.isfinite(v))
        if max_loss is not None:
            ok &= jnp.all(jnp.abs(metrics["loss"]) <= max_loss)
        return state, metrics, ok

    return run


def divergence(first: int, metrics: dict[str, np.ndarray], max_loss: float | None,
               last_ckpt: int | None) -> JtlError:
    """Name the first bad step of a chunk (starting at step `first` + 1) and its loss terms."""
    n = len(metrics["loss"])
    bad = [j for j in range(n) if not all(np.isfinite(v[j]) for v in metrics.values())
           or (max_loss is not None and abs(metrics["loss"][j]) > max_loss)]
    if bad:
        j = bad[0]
        terms = ", ".join(f"{k}={float(v[j]):.3g}" for k, v in metrics.items())
        what = f"at step {first + j + 1}: {terms}"
    else:
        what = f"in steps {first + 1}-{first + n}: the parameters became non-finite"
    limit = f" (trainer.max_loss={max_loss:g})" if max_loss is not None else ""
    kept = f"step {last_ckpt}" if last_ckpt else "none"
    return JtlError(f"training diverged {what}{limit}. Nothing past the last good checkpoint "
                    f"({kept}) was saved. Lower optim.lr or the method's weight and start a new "
                    "run dir (another hydra.run.dir, or overwrite=true)")


def scored_splits(cfg: Mapping[str, Any], roles: Roles) -> list[tuple[str, Any]]:
    """(metric prefix, split) of every evaluation: each labeled source's val and test when its
    classes mean the target's (`source`, or `source.<k>` for several), target val and test,
    and each `eval` domain's test (and val)."""
    target = roles.target
    scored: list[tuple[str, Any]] = []
    cfgs = cfg.get("sources") or [cfg.get("source") or {}]
    for name, dom, dcfg in zip(group_names("source", len(roles.sources)), roles.sources, cfgs,
                               strict=False):
        if dom.labels == "all" and same_label_space(cfg, dom, target, dcfg):
            scored += [(f"{name}/val", dom.val), (f"{name}/test", dom.test)]
    if target.labels == "all":
        scored.append(("target/val", target.val))
    scored.append(("target/test", target.test))
    for name, dom in roles.evals.items():
        if dom.num_classes == target.num_classes and dom.labels != "none":
            scored += [(f"eval/{name}/val", dom.val)] if dom.labels == "all" else []
            scored.append((f"eval/{name}/test", dom.test))
    return scored


def boundary_key(seed: int, mark: int) -> jax.Array:
    """The PRNG key of the method's hook at `mark` (0: `init_state`) for seed `seed`."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 2), mark)


@dataclasses.dataclass
class Program:
    """What is fixed for one training (the compiled chunks are cached by length)."""

    cfg: dict
    lanes: list[Lane]
    method: Method
    roles: Roles
    graphdef: nnx.GraphDef
    step_fn: Any
    total: int
    batch_size: int
    spc: int
    vmapped: bool
    mesh: Any
    data: Any
    pps: dict
    streamed: bool
    run_key: Any
    max_loss: float | None
    eval_every: int
    log_every: int
    ckpt_every: int
    scored: list[tuple[str, Any]]
    evaluate: Any
    stats_only: bool
    online: bool = False  # a stream run (jtl/train/online.py): batches in order, scored
    hparams: Any = None  # a search's traced hyper-parameters, lane axis first (None: none)
    chunks: dict[int, Any] = dataclasses.field(default_factory=dict)

    @property
    def managers(self) -> list[Any]:
        return [lane.mngr for lane in self.lanes]


@dataclasses.dataclass
class LoopState:
    """What changes as the loop runs."""

    state: Any  # the train state (seed axis first when vmapped)
    step: int
    last_ckpt: int | None
    alive: list[int]
    pending: list[tuple[int, Any, Any]] = dataclasses.field(default_factory=list)
    checked: int = 0  # calls in `pending` whose health flags were read


def make_program(cfg: dict, lanes: list[Lane], method: Method, roles: Roles,
                 graphdef: nnx.GraphDef, step_fn: Any, spc: int, vmapped: bool,
                 mesh: Any, total: int, online: bool = False) -> Program:
    """The train data placed (on the device up to `DEVICE_DATA_LIMIT`, else streamed), the
    evaluation plan and every interval read from `cfg['trainer']`. `online`: the target train
    split is the stream, its labels kept beside it for the trainer's scoring."""
    tcfg = cfg["trainer"]
    # Stored fields (uint8 images stay uint8) per group; each group's pipeline runs in the step.
    data, pps = train_groups({"source": roles.sources, "target": [roles.target]}, method.uses)
    if online:
        data["target"][STREAM_LABEL] = roles.target.train.y
    nbytes = sum(a.nbytes for d in data.values() for a in d.values())
    mode = tcfg.get("data_on_device", "auto")
    streamed = (nbytes > DEVICE_DATA_LIMIT) if mode == "auto" else not bool(mode)
    if online and streamed:
        raise JtlError(f"online: the stream ({nbytes / 2**30:.1f} GiB) is kept on the device; "
                       "leave trainer.data_on_device at auto or true")
    if not streamed:
        data = meshes.replicate(data, mesh)
    max_loss = tcfg.get("max_loss")
    run_key = stack([lane.run_key for lane in lanes]) if vmapped else lanes[0].run_key
    hparams = stack([lane.hparams for lane in lanes]) if lanes[0].hparams else None
    return Program(
        cfg=cfg, lanes=lanes, method=method, roles=roles, graphdef=graphdef, step_fn=step_fn,
        total=total, batch_size=int(tcfg["batch_size"]), spc=spc,
        vmapped=vmapped, mesh=mesh, data=data, pps=pps, streamed=streamed, run_key=run_key,
        max_loss=None if max_loss is None else float(max_loss),
        eval_every=int(tcfg["eval_every"]), log_every=int(tcfg["log_every"]),
        ckpt_every=int(tcfg["checkpoint_every"]), scored=scored_splits(cfg, roles),
        evaluate=make_eval(graphdef), stats_only=method.trainable is None and not online,
        online=online, hparams=hparams)


def marks(prog: Program, start: int) -> list[int]:
    """The marks after `start`; a statistics-only run has the last step only."""
    if prog.stats_only:
        every: list[int] = []
    else:
        every = [prog.eval_every, prog.log_every, prog.ckpt_every,
                 int(prog.method.boundary_every or 0)]
    return [m for m in boundaries(prog.total, every) if m > start]


def compiled(prog: Program, n: int) -> Any:
    """The guarded, jitted chunk of `n` steps (state donated), vmapped over seeds when the
    program trains several."""
    if n not in prog.chunks:
        chunk = guarded(make_chunk(prog.step_fn, prog.batch_size, n, prog.streamed,
                                   meshes.batch_constraint(prog.mesh), prog.pps, prog.online),
                        prog.max_loss)
        if prog.vmapped:  # lanes on axis 0 of state, keys, (streamed) batches, hparams
            chunk = jax.vmap(chunk, in_axes=(0, 0 if prog.streamed else None, 0, 0))
        prog.chunks[n] = jax.jit(chunk, donate_argnums=0)
    return prog.chunks[n]


def host_batch(prog: Program, first: int, n: int) -> Any:
    """The streamed batches of steps first+1..first+n (the indices `draw` would take)."""
    def one(key: Any) -> Any:
        keys = jax.vmap(lambda t: step_keys(key, t)[0])(first + np.arange(n))
        return host_batches(prog.data, keys, prog.batch_size)

    if prog.vmapped:
        return stack([one(lane.run_key) for lane in prog.lanes])
    return meshes.split_streamed(one(prog.run_key), prog.mesh)


def run_evals(prog: Program, params: Any, lane: Lane) -> dict[str, float]:
    """Every scored split's accuracy and loss, the sources' mean and DEV (when the lane has)."""
    out = {}
    for name, split in prog.scored:
        if len(split):  # an empty val split (few-shot, val_fraction=0) is not evaluated
            for k, v in prog.evaluate(params, split).items():
                out[f"{name}/{k}"] = v
    n_sources = len(prog.roles.sources)
    if n_sources > 1:  # DomainBed's training-domain validation: the mean
        for part in ("val", "test"):
            accs = [out[f"{g}/{part}/accuracy"] for g in group_names("source", n_sources)
                    if f"{g}/{part}/accuracy" in out]
            if accs:
                out[f"source/{part}/accuracy"] = float(np.mean(accs))
    if lane.dev is not None:
        out.update(lane.dev(params))
    return out


def boundary(prog: Program, ls: LoopState, mark: int) -> None:
    """The method's hook on each lane's parameters and state (statistics-only methods: their
    whole run)."""
    method = prog.method
    if type(method).on_boundary is Method.on_boundary:
        return
    params, mstates = [], []
    for i, lane in enumerate(prog.lanes):
        p = jax.device_get(lane_state(ls.state["params"], i, prog.vmapped))
        m = jax.device_get(lane_state(ls.state.get("method"), i, prog.vmapped))
        ctx = Boundary(mark, prog.total, prog.graphdef, prog.roles, boundary_key(lane.seed, mark))
        p, m = (lane.method or method).on_boundary(p, m, ctx)  # a search lane: its values
        params.append(p)
        mstates.append(m)
    new = {"params": stack(params) if prog.vmapped else params[0]}
    if mstates[0] is not None:
        new["method"] = stack(mstates) if prog.vmapped else mstates[0]
    if not prog.vmapped:
        new = meshes.replicate(new, prog.mesh)
    ls.state = {**ls.state, **new}


def check(prog: Program, ls: LoopState, upto: int) -> None:
    """Read the health flags of `pending[:upto]`: a lane whose flag is down has diverged; it
    ends (failed) and the others go on. Every lane down: the first one's error is raised."""
    for first, metrics, ok in ls.pending[ls.checked:upto]:
        ok = np.atleast_1d(np.asarray(ok))
        for i in [i for i in ls.alive if not ok[i]]:  # one flag, or one per seed
            m = jax.device_get(lane_state(metrics, i, prog.vmapped))
            prog.lanes[i].failed = divergence(first, m, prog.max_loss, ls.last_ckpt)
            ls.alive.remove(i)
    ls.checked = max(ls.checked, upto)
    if not ls.alive:
        raise prog.lanes[0].failed


def advance(prog: Program, ls: LoopState, mark: int, bar: Any) -> None:
    """Chunks of at most `steps_per_call` steps up to `mark` (a statistics-only run's step
    count jumps there)."""
    if prog.stats_only:
        ls.state = {**ls.state, "step": jnp.full_like(ls.state["step"], mark)}
        bar.update(mark - ls.step)
        ls.step = mark
    while ls.step < mark:
        n = min(prog.spc, mark - ls.step)
        batch = host_batch(prog, ls.step, n) if prog.streamed else prog.data
        ls.state, metrics, ok = compiled(prog, n)(ls.state, batch, prog.run_key, prog.hparams)
        ls.pending.append((ls.step, metrics, ok))
        check(prog, ls, len(ls.pending) - 1)  # the previous call's flags: no stall on this one
        ls.step += n
        bar.update(n)
        inject_fault(ls.step, managers=prog.managers)


def train_rows(prog: Program, ls: LoopState) -> dict[int, dict[str, float]]:
    """Each live lane's mean of every train metric over the calls since the last log."""
    rows: dict[int, dict[str, float]] = {i: {} for i in ls.alive}
    stacked = jax.device_get([m for _, m, _ in ls.pending])
    for i in ls.alive:
        lane_m = [lane_state(m, i, prog.vmapped) for m in stacked]
        rows[i].update({f"train/{k}": float(np.mean(np.concatenate([m[k] for m in lane_m])))
                        for k in lane_m[0]})
    ls.pending, ls.checked = [], 0
    return rows


def at_mark(prog: Program, ls: LoopState, mark: int, bar: Any) -> None:
    """Health flags, the method's hook, the row (train means at log marks, evaluations at
    eval marks) and the checkpoints due at `mark`."""
    check(prog, ls, len(ls.pending))
    boundary(prog, ls, mark)
    last = mark == prog.total
    rows: dict[int, dict[str, float]] = {i: {} for i in ls.alive}
    if ls.pending and (mark % prog.log_every == 0 or last):
        rows = train_rows(prog, ls)
    if mark % prog.eval_every == 0 or last:
        for i in ls.alive:
            lane = prog.lanes[i]
            lane.last_eval = run_evals(prog, lane_state(ls.state["params"], i, prog.vmapped),
                                       lane)
            rows[i].update(lane.last_eval)
    for i, row in rows.items():
        if row:
            prog.lanes[i].writer.write(mark, row)
    if rows.get(ls.alive[0]):
        bar.set_postfix({k.split("/", 1)[1] if k.startswith("train/") else k: f"{v:.3f}"
                         for k, v in rows[ls.alive[0]].items()
                         if k in ("train/loss", "source/test/accuracy", "target/test/accuracy")})
    if mark % prog.ckpt_every == 0 or last:
        for i in ls.alive:
            prog.lanes[i].mngr.save(mark, args=ckpt.ocp.args.StandardSave(
                lane_state(ls.state, i, prog.vmapped)))
        inject_fault(mark, "save")
        ls.last_ckpt = mark


def evaluate_restored(prog: Program, ls: LoopState) -> None:
    """A lane whose final state was restored, not trained, is evaluated (once in its rows)."""
    for i in ls.alive:
        lane = prog.lanes[i]
        if not lane.last_eval:
            lane.last_eval = run_evals(prog, lane_state(ls.state["params"], i, prog.vmapped),
                                       lane)
            if not any(r["step"] == prog.total and "target/test/accuracy" in r
                       for r in lane.writer.rows):
                lane.writer.write(prog.total, lane.last_eval)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, with the step reached and the last checkpoint."""

    def __init__(self, step: int, checkpoint: int | None) -> None:
        super().__init__(step)
        self.step, self.checkpoint = step, checkpoint


def run(prog: Program, ls: LoopState) -> None:
    """Every mark after `ls.step`, then the final evaluations; checkpoints in flight finish
    (or, after a failure, are abandoned so their threads cannot keep the process alive), and
    the lanes' writers and managers are closed whatever happens."""
    from tqdm.auto import tqdm

    tcfg = prog.cfg["trainer"]
    seeds = ",".join(str(lane.seed) for lane in prog.lanes)
    what = f"{len(prog.lanes)} lanes" if prog.hparams is not None else f"seed={seeds}"
    bar = tqdm(total=prog.total, initial=ls.step, desc=f"{prog.cfg['method']['name']} "
               f"{what}", unit="step", dynamic_ncols=True,
               disable=not tcfg.get("progress", True) or not distributed.is_primary())
    try:
        for mark in marks(prog, ls.step):
            advance(prog, ls, mark, bar)
            at_mark(prog, ls, mark, bar)
        evaluate_restored(prog, ls)
        for m in prog.managers:
            m.wait_until_finished()
    except KeyboardInterrupt:
        for m in prog.managers:
            m.wait_until_finished()
        raise RunInterrupted(ls.step, prog.lanes[0].mngr.latest_step()) from None
    except Exception:
        ckpt.finish_or_abandon(prog.managers)
        raise
    finally:
        bar.close()
        for lane in prog.lanes:
            lane.writer.close()
            lane.mngr.close()
