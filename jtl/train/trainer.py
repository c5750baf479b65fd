"""`train_and_evaluate(cfg, workdir)`: the one trainer every method runs on.

The path from a yaml key to a number in `summary.json`: domains are built from `source`/
`target`, the method from `method`, the network from `model` plus the method's modules, the
optimizer from `optim` with the method's `trainable` regex and the user's `freeze` regex; the
loop runs chunks of `trainer.steps_per_call` steps, evaluates every `trainer.eval_every`,
checkpoints every `trainer.checkpoint_every`, and writes `summary.json` at the end.

The run dir is owned through `jtl.rundir.claim` (locked, identity-checked); every compiled call
returns one health flag (finite metrics and parameters, loss under `trainer.max_loss`), so a
diverging run stops with its step and loss terms named and never checkpoints non-finite state.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from omegaconf import DictConfig, OmegaConf, open_dict

from jtl import inputs, rundir, schema
from jtl.errors import JtlError
from jtl.methods import Method, build_method
from jtl.methods.base import Boundary
from jtl.models import build_network
from jtl.models.base import param_paths
from jtl.train import checkpoint as ckpt
from jtl.train import compile_cache, distributed
from jtl.train import mesh as meshes
from jtl.train.build import (  # noqa: F401  (re-exported: the factory's old home)
    Roles,
    build,
    build_all,
    check_label_spaces,
    has_source_head,
    init_seed,
    initial_params,
    load_domains,
    load_roles,
    network,
    resolve_roles,
    same_label_space,
    untrained_head,
)
from jtl.train.data import group_names, host_batches, train_groups
from jtl.train.evaluate import make_eval
from jtl.train.optim import build_optimizer
from jtl.train.selection import make_dev, select_dev
from jtl.train.step import (
    frozen_norms,
    init_state,
    make_chunk,
    make_step,
    stat_paths,
    step_keys,
)
from jtl.train.writer import MetricWriter
from jtl.transfer import Recipe

log = logging.getLogger("jtl")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Above this many bytes of train arrays, batches are streamed from the host.
DEVICE_DATA_LIMIT = 2 << 30


def steps_per_call(cfg: Mapping[str, Any], has_conv: bool) -> int:
    """`auto`: chunks up to the evaluation interval (at most 500 steps), except per-step on
    XLA:CPU for backbones whose `has_conv` says they run lax.conv there (ResNet), which is far
    slower inside a scan. LeNet's convolutions are im2col on CPU and scan as fast as they step,
    so it is chunked too (benchmarks/README.md, benchmarks/trainer_speed.py)."""
    value = cfg["steps_per_call"]
    if value != "auto":
        return max(int(value), 1)
    if jax.default_backend() == "cpu" and has_conv:
        return 1
    return min(int(cfg["eval_every"]), 500)


def boundaries(total: int, every: list[int]) -> list[int]:
    """Steps where a chunk must end: evaluations, checkpoints, logs, the last step."""
    marks = {total}
    for e in every:
        if e > 0:
            marks.update(range(e, total, e))
    return sorted(marks)


def _plain(cfg: Any) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, with the step reached and the last checkpoint."""

    def __init__(self, step: int, checkpoint: int | None) -> None:
        super().__init__(step)
        self.step, self.checkpoint = step, checkpoint


def _positive_int(value: Any, key: str, minimum: int = 1) -> int:
    ok = (not isinstance(value, bool) and isinstance(value, int | float)
          and float(value).is_integer())
    if not ok or int(value) < minimum:
        raise JtlError(f"{key}={value!r}: must be an integer >= {minimum}")
    return int(value)


def check_config(cfg: Mapping[str, Any]) -> None:
    """The config against its typed schema (`jtl.schema`: every key's type and range, unknown
    keys), then what needs more than one key, before any data is loaded or step is taken."""
    schema.validate(cfg)
    t = cfg.get("trainer") or {}
    if t.get("seeds") is not None and t.get("mesh", "auto") not in ("auto", None, 1):
        raise JtlError("trainer.seeds runs on one device (vmapped); with trainer.seeds, leave "
                       "trainer.mesh at auto or set it to 1")
    meshes.make_mesh(t.get("mesh", "auto"))
    Recipe.from_cfg(cfg.get("transfer")).check_init(cfg)


def _check_batch(tcfg: Mapping[str, Any], roles: Roles, uses: frozenset[str]) -> None:
    """A batch larger than a train split repeats examples (batches are drawn with
    replacement): an error unless the user says `trainer.batch_over_split=resample`."""
    policy = tcfg.get("batch_over_split", "error")
    if policy not in ("error", "resample"):
        raise JtlError(f"trainer.batch_over_split={policy!r}: use error or resample")
    batch_size = int(tcfg["batch_size"])
    for role, dom in [*(("source", s) for s in roles.sources), ("target", roles.target)]:
        n = len(dom.train)
        if f"{role}/x" in uses and batch_size > n and policy == "error":
            raise JtlError(f"trainer.batch_size={batch_size} is larger than the {role} train "
                           f"split of '{dom.name}' ({n} examples); set trainer.batch_size<={n}, "
                           "or trainer.batch_over_split=resample to draw it with repeats")


def _scored_splits(cfg: Mapping[str, Any], roles: Roles) -> list[tuple[str, Any]]:
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


def _selection(history: list[dict], labeled: str, final: dict[str, float], total: int,
               val_policy: str | None) -> dict[str, Any]:
    """Model selection over the evaluations: honest (validation split of the domain whose
    labels the method trains on) beside the oracle (target test labels, for reference only).
    Without a validation split the honest choice is the final step, and the summary says so.
    Runs with a DEV risk also get the evaluation of lowest DEV risk (label-free, selection.py)."""
    evals = [r for r in history if "target/test/accuracy" in r]
    honest_evals = [r for r in evals if f"{labeled}/val/accuracy" in r]
    out: dict[str, Any] = {"selected/val/policy": val_policy} if val_policy else {}
    if honest_evals:
        honest = max(honest_evals, key=lambda r: (r[f"{labeled}/val/accuracy"], -r["step"]))
        out.update({"selected/val/split": f"{labeled}/val", "selected/val/step": honest["step"],
                    "selected/val/target/test/accuracy": honest["target/test/accuracy"]})
    else:
        out.update({"selected/val/split": "none (no validation split): final step",
                    "selected/val/step": total,
                    "selected/val/target/test/accuracy": final["target/test/accuracy"]})
    if evals:
        oracle = max(evals, key=lambda r: (r["target/test/accuracy"], -r["step"]))
        out.update({"selected/oracle/step": oracle["step"],
                    "selected/oracle/target/test/accuracy": oracle["target/test/accuracy"]})
    out.update(select_dev(evals))
    return out


def _guarded(chunk: Any, max_loss: float | None) -> Any:
    """The chunk plus one health flag: all metrics and parameters finite, |loss| <= max_loss.
    One reduced scalar per compiled call, so divergence is caught where it happens."""

    def run(state, data, run_key):
        state, metrics = chunk(state, data, run_key)
        ok = jnp.isfinite(optax.global_norm(state["params"]))
        for v in metrics.values():
            ok &= jnp.all(jnp.isfinite(v))
        if max_loss is not None:
            ok &= jnp.all(jnp.abs(metrics["loss"]) <= max_loss)
        return state, metrics, ok

    return run


def _divergence(first: int, metrics: dict[str, np.ndarray], max_loss: float | None,
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


def _inject_fault(step: int, at: str = "step", managers: list[Any] = ()) -> None:
    """Test hook, so reliability tests put faults at known points instead of racing a sleep.

    `JTL_FAULT=<fault>@<step>`: `sigint` or `sigkill` once training reaches the step;
    `sigkill-in-save` right after the checkpoint save of that step started; `enospc` (a full
    disk): the next checkpoint write fails inside orbax as tensorstore's does on a full disk
    (the saves of `managers` still in flight finish first, so the fault never hits an earlier
    step's asynchronous save: deterministic).
    """
    spec = os.environ.get("JTL_FAULT")
    if not spec:
        return
    import signal

    fault, when = spec.split("@")
    if fault not in ("sigint", "sigkill", "sigkill-in-save", "enospc"):
        raise ValueError(f"JTL_FAULT={spec}: unknown fault {fault!r}")
    if (at == "save") != (fault == "sigkill-in-save") or step < int(when):
        return
    os.environ.pop("JTL_FAULT")
    if fault == "enospc":
        for m in managers:
            m.wait_until_finished()
        ckpt.fail_next_write()
        return
    os.kill(os.getpid(), signal.SIGINT if fault == "sigint" else signal.SIGKILL)


def train_and_evaluate(cfg: DictConfig | Mapping[str, Any], workdir: str | Path,
                       overrides: list[str] | None = None,
                       on_complete: Any | None = None) -> dict:
    """Train one run into `workdir` (resuming from its latest valid checkpoint) and return its
    summary. A completed run of the same config is not retrained; a dir holding another
    config's run is refused (or moved aside with `overwrite=true`). `on_complete(workdir,
    summary)` runs after a completed summary is written (e.g. end-of-training measures)."""
    distributed.initialize()  # before any device use; a no-op unless the environment says so
    raw, cfg = cfg, resolve_roles(_plain(cfg))
    cfg.pop(inputs.KEY, None)  # a saved config's record: recorded anew below, not an input
    check_config(cfg)
    compile_cache.enable()  # a second run of the same shapes starts without compiling
    workdir = Path(workdir)
    if cfg["trainer"].get("seeds") is not None:
        return train_seeds(raw, workdir, overrides, on_complete)
    if cfg["trainer"].get("lanes") is not None:
        raise JtlError("trainer.lanes is set by trainer.seeds on each seed's run (how many "
                       "seeds trained together); a single run cannot set it")
    cfg = resolve_pretrain(cfg)
    cfg = inputs.record(cfg, workdir)  # user files and init_from: by content, in the identity
    primary = distributed.is_primary()  # process 0 owns the run dir; the others only train
    with (rundir.claim(workdir, cfg, overwrite=bool(cfg.get("overwrite")), overrides=overrides)
          if primary else contextlib.nullcontext()):
        summary = rundir.completed_summary(workdir)
        if summary is not None:
            log.info("%s is a completed run of this config: not retrained", workdir)
        else:
            t0 = time.time()
            try:
                summary = _train(cfg, workdir, t0)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                if primary:
                    rundir.record_failure(workdir, _failure(e, cfg, t0))
                raise
            if primary:
                rundir.record_completed(workdir, summary)
        if on_complete is not None and primary:
            on_complete(workdir, summary)
    return summary


@dataclasses.dataclass
class _Lane:
    """One seed's run inside a training that may vmap several: its config, dir and writers."""

    cfg: dict
    workdir: Path
    mngr: Any = None
    writer: MetricWriter | None = None
    dev: Any = None
    run_key: Any = None
    last_eval: dict = dataclasses.field(default_factory=dict)
    failed: JtlError | None = None

    @property
    def seed(self) -> int:
        return int(self.cfg["seed"])


def _failure(e: BaseException, cfg: Mapping[str, Any], t0: float) -> dict[str, Any]:
    """What failed.json records of a failed run."""
    return {"error": f"{type(e).__name__}: {e}", "seed": cfg.get("seed"),
            "method": (cfg.get("method") or {}).get("name"), "wall_time_s": time.time() - t0}


def lane_config(cfg: DictConfig | Mapping[str, Any], seed: int,
                lanes: int | None = None) -> dict:
    """One seed of a `trainer.seeds` run has the config of a separate run of that seed, so its
    run dir is an ordinary run (same identity) to jtl.report, NTG pairing and load_run; except
    where the program's width changes the numbers (`lanes_change_results`): then `lanes` (the
    seeds trained together) is `trainer.lanes`, part of the identity. A composed (Hydra) config
    is resolved per seed, so a key interpolating `${seed}` follows it as it would in a separate
    run."""
    if isinstance(cfg, DictConfig):
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.seed, cfg.trainer.seeds = seed, None
            if lanes is not None:
                cfg.trainer.lanes = lanes
        return resolve_roles(_plain(cfg))
    out = resolve_roles(copy.deepcopy(dict(cfg)))
    out["seed"], out["trainer"] = seed, {**out["trainer"], "seeds": None}
    if lanes is not None:
        out["trainer"]["lanes"] = lanes
    return out


def lanes_change_results(cfg: Mapping[str, Any]) -> bool:
    """Whether a seed trained beside others (vmapped) can end far from a separate run of it.

    Vmapping reorders float sums; the difference stays at float noise (measured: 1e-6 in the
    parameters after 60 steps of DANN on the MLP) except under Adam with BatchNorm: a
    direction whose true gradient is exactly zero (a bias feeding a BatchNorm, which subtracts
    it) gets reduction-order noise that Adam normalises into lr-sized steps, and the runs part
    (measured: 1e-2 in weights, 0.1 in BN statistics, 0.3 points of accuracy after 60 steps;
    the same for 2 and 3 lanes, not for 4, on a 2-core CPU). Such runs carry `trainer.lanes`
    in their identity, so they are never mixed with separate runs or other widths.
    """
    if (cfg.get("optim") or {}).get("name") != "adam":
        return False
    method = build_method(cfg["method"])
    net = nnx.eval_shape(lambda: build_network(cfg["model"], 2, method, 0))
    return bool(stat_paths(net))


def _check_lanes(lanes: list[_Lane]) -> None:
    """One vmapped program shares data, model and every setting but the seed: a key that
    follows the seed (e.g. `target.split_seed: ${seed}`) would give each lane a config it was
    not trained with."""
    for lane in lanes[1:]:
        keys = [k for k in rundir.differing_keys(lanes[0].cfg, lane.cfg) if k != "seed"]
        if keys:
            raise JtlError(f"trainer.seeds: seeds {lanes[0].seed} and {lane.seed} differ in "
                           f"{keys}, not only in the seed; one vmapped program trains one "
                           "config: run the seeds separately (-m seed=...)")


def resolve_pretrain(cfg: dict) -> dict:
    """`cfg` with `init_from` set to its `pretrain` run, found or trained first (once, locked;
    `jtl.transfer.pretrain`): per seed, since seed s starts from the source model of seed s."""
    if not cfg.get("pretrain"):
        return cfg
    from jtl.transfer.pretrain import resolve

    return resolve(cfg, train_and_evaluate)


def train_seeds(cfg: DictConfig | Mapping[str, Any], workdir: str | Path,
                overrides: list[str] | None = None,
                on_complete: Any | None = None) -> dict:
    """`trainer.seeds=[0,1,...]`: every seed of one config trained at once, one compiled
    program vmapped over the seeds (state, keys, batches), each seed's run in
    `<workdir>/seed<s>`. Seeds already completed there are not retrained; a seed that
    diverges fails alone. Returns {"status", "seeds", "runs": {seed: summary}}."""
    raw, cfg = cfg, _plain(cfg)
    seeds = [_positive_int(s, "trainer.seeds[]", minimum=0) for s in cfg["trainer"]["seeds"]]
    if not seeds or len(set(seeds)) != len(seeds):
        raise JtlError(f"trainer.seeds={seeds}: a non-empty list of distinct seeds")
    width = len(seeds) if lanes_change_results(cfg) and len(seeds) > 1 else None
    lanes = [_Lane(lane_config(raw, s, width), Path(workdir) / f"seed{s}") for s in seeds]
    _check_lanes(lanes)
    for lane in lanes:
        lane.cfg = inputs.record(resolve_pretrain(lane.cfg), lane.workdir)
    summaries: dict[int, dict] = {}
    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        for lane in lanes:
            stack.enter_context(rundir.claim(lane.workdir, lane.cfg, overrides=overrides,
                                             overwrite=bool(cfg.get("overwrite"))))
            done = rundir.completed_summary(lane.workdir)
            if done is not None:
                summaries[lane.seed] = done
        todo = [lane for lane in lanes if lane.seed not in summaries]
        if todo and width and len(todo) < width:
            raise JtlError(
                f"trainer.seeds={seeds}: seeds {sorted(summaries)} are completed and "
                f"{[ln.seed for ln in todo]} are not; under Adam with BatchNorm a seed's "
                f"result depends on how many seeds train beside it (trainer.lanes={width} is "
                "part of these runs' identity), so the rest cannot be trained alone: run them "
                "in another dir (hydra.run.dir=...) with trainer.seeds of the same length")
        if todo:
            t0 = time.time()
            try:
                results = _train_lanes(cfg, todo, t0, vmapped=True)
            except Exception as e:  # shared failure (data, config), or every seed diverged
                results = [lane.failed or e for lane in todo]
            for lane, r in zip(todo, results, strict=True):
                if isinstance(r, Exception):
                    rundir.record_failure(lane.workdir, _failure(r, lane.cfg, t0))
                    failures.append(f"seed {lane.seed} ({lane.workdir}): {r}")
                else:
                    rundir.record_completed(lane.workdir, r)
                    summaries[lane.seed] = r
        if on_complete is not None:
            for lane in lanes:
                if lane.seed in summaries:
                    on_complete(lane.workdir, summaries[lane.seed])
    if failures:
        raise JtlError(f"{len(failures)} of {len(seeds)} seeds failed: " + "; ".join(failures))
    return {"status": "completed", "seeds": seeds,
            "runs": {s: summaries[s] for s in seeds}}


def _train(cfg: dict, workdir: Path, t0: float) -> dict:
    result = _train_lanes(cfg, [_Lane(cfg, workdir)], t0, vmapped=False)[0]
    if isinstance(result, Exception):
        raise result
    return result


def _lane_state(state: Any, i: int, vmapped: bool) -> Any:
    return jax.tree_util.tree_map(lambda a: a[i], state) if vmapped else state


def _stack(trees: list[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _common_start(lanes: list[_Lane], state: Any) -> list[Any]:
    """Each lane's restored state, all at one step: the latest checkpoint every lane has
    (later ones of some lanes, left by a crash between two lanes' saves, are deleted: that
    interval is recomputed, with the same result)."""
    restored = [ckpt.restore_latest(lane.mngr, state) for lane in lanes]
    steps = [0 if r is None else int(r["step"]) for r in restored]
    if len(set(steps)) == 1:
        return [state if r is None else r for r in restored]
    shared = set.intersection(*(set(lane.mngr.all_steps()) for lane in lanes))
    start = max((s for s in shared if s <= min(steps)), default=0)
    out = []
    for lane, r in zip(lanes, restored, strict=True):
        for s in lane.mngr.all_steps():
            if s > start:
                lane.mngr.delete(s)
        out.append(state if not start else r if int(r["step"]) == start else
                   lane.mngr.restore(start, args=ckpt.ocp.args.StandardRestore(state)))
    return out


def _train_lanes(cfg: dict, lanes: list[_Lane], t0: float, vmapped: bool
                 ) -> list[dict | Exception]:
    """Train one run, or several seeds of one config at once (`vmapped`: one compiled program
    over a leading seed axis of the state, each seed drawing its own batches). Returns each
    lane's summary, or the exception that ended that lane alone (a diverged seed)."""
    tcfg = cfg["trainer"]
    total = int(tcfg["steps"])
    built = build_all(lanes[0].cfg)
    roles, method, net = built.roles, built.method, built.net
    source, target = roles.source, roles.target
    batch_size = int(tcfg["batch_size"])
    _check_batch(tcfg, roles, method.uses)
    has_conv = type(net.backbone).has_conv
    graphdef, _ = nnx.split(net)
    recipe = Recipe.from_cfg(cfg.get("transfer"))
    params = [initial_params(lane.cfg, target, method, net if i == 0 else None, source)
              for i, lane in enumerate(lanes)]
    blocks = len(net.backbone.blocks)
    stats = stat_paths(net)  # batch-norm statistics: state, not trained, not counted
    freeze = recipe.freeze(cfg.get("freeze"), blocks)
    stats_only = method.trainable is None  # no gradient step: the boundary hook only
    tx = build_optimizer(cfg["optim"], params[0], total,
                         ".*" if stats_only else method.trainable,
                         ".*" if stats_only else freeze, recipe.all_groups(blocks), fixed=stats)
    mesh = None if vmapped else meshes.make_mesh(tcfg.get("mesh", "auto"))
    meshes.check_batch(mesh, batch_size)
    keep = int(tcfg.get("keep_checkpoints", 2))
    for lane in lanes:
        lane.mngr = ckpt.run_manager(lane.workdir / rundir.CHECKPOINTS, keep)
        lane.run_key = jax.random.fold_in(jax.random.key(lane.seed), 1)
    states = _common_start(lanes, meshes.replicate(init_state(params[0], tx), mesh))
    if not int(states[0]["step"]):  # fresh: each lane from its own parameters
        states = [meshes.replicate(init_state(p, tx), mesh) for p in params]
    state = _stack(states) if vmapped else states[0]
    run_key = _stack([lane.run_key for lane in lanes]) if vmapped else lanes[0].run_key
    start = int(states[0]["step"])
    if start:
        log.info("resuming %s from step %d", ", ".join(str(ln.workdir) for ln in lanes), start)
    last_ckpt: int | None = start or None
    for lane in lanes:
        lane.writer = MetricWriter(lane.workdir, start, bool(tcfg.get("tensorboard", True)),
                                   files=distributed.is_primary())

    # Stored fields (uint8 images stay uint8) per group; each group's pipeline runs in the step.
    data, pps = train_groups({"source": roles.sources, "target": [target]}, method.uses)
    nbytes = sum(a.nbytes for d in data.values() for a in d.values())
    mode = tcfg.get("data_on_device", "auto")
    streamed = (nbytes > DEVICE_DATA_LIMIT) if mode == "auto" else not bool(mode)
    if not streamed:
        data = meshes.replicate(data, mesh)
    spc = steps_per_call(tcfg, has_conv)
    max_loss = tcfg.get("max_loss")
    max_loss = None if max_loss is None else float(max_loss)
    step_fn = make_step(graphdef, method, tx, total, frozen_norms(net, freeze))
    chunks: dict[int, Any] = {}
    evaluate = make_eval(graphdef)
    eval_every, log_every = int(tcfg["eval_every"]), int(tcfg["log_every"])
    ckpt_every = int(tcfg["checkpoint_every"])

    # Label-free selection (DEV) for one labeled source and methods that read no target labels.
    for lane in lanes:
        lane.dev = (None if "target/y" in method.uses or len(roles.sources) != 1
                    or source.labels != "all" else make_dev(graphdef, source, target, lane.seed))
    scored = _scored_splits(cfg, roles)

    def run_evals(params: Any, lane: _Lane) -> dict[str, float]:
        out = {}
        for name, split in scored:
            if len(split):  # an empty val split (few-shot, val_fraction=0) is not evaluated
                for k, v in evaluate(params, split).items():
                    out[f"{name}/{k}"] = v
        if len(roles.sources) > 1:  # DomainBed's training-domain validation: the mean
            for part in ("val", "test"):
                accs = [out[f"{g}/{part}/accuracy"] for g in group_names("source",
                                                                         len(roles.sources))
                        if f"{g}/{part}/accuracy" in out]
                if accs:
                    out[f"source/{part}/accuracy"] = float(np.mean(accs))
        if lane.dev is not None:
            out.update(lane.dev(params))
        return out

    def boundary(state: Any, mark: int) -> Any:
        """The method's hook on each lane's parameters (statistics-only methods: their run)."""
        if type(method).on_boundary is Method.on_boundary:
            return state
        lane_params = []
        for i, lane in enumerate(lanes):
            p = jax.device_get(_lane_state(state["params"], i, vmapped))
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(lane.seed), 2), mark)
            ctx = Boundary(mark, total, graphdef, roles, key)
            lane_params.append(method.on_boundary(p, ctx))
        new = _stack(lane_params) if vmapped else lane_params[0]
        return {**state, "params": meshes.replicate(new, mesh) if not vmapped else new}

    def compiled(n: int) -> Any:
        chunk = _guarded(make_chunk(step_fn, batch_size, n, streamed,
                                    meshes.batch_constraint(mesh), pps), max_loss)
        if vmapped:  # seeds on axis 0 of state, keys and (streamed) batches
            chunk = jax.vmap(chunk, in_axes=(0, 0 if streamed else None, 0))
        return jax.jit(chunk, donate_argnums=0)

    def host_batch(first: int, n: int) -> Any:
        def one(key: Any) -> Any:
            keys = jax.vmap(lambda t: step_keys(key, t)[0])(first + np.arange(n))
            return host_batches(data, keys, batch_size)

        if vmapped:
            return _stack([one(lane.run_key) for lane in lanes])
        return meshes.split_streamed(one(run_key), mesh)

    from tqdm.auto import tqdm

    seeds = ",".join(str(lane.seed) for lane in lanes)
    bar = tqdm(total=total, initial=start, desc=f"{cfg['method']['name']} seed={seeds}",
               unit="step", dynamic_ncols=True,
               disable=not tcfg.get("progress", True) or not distributed.is_primary())
    marks = [m for m in ([total] if stats_only else
                         boundaries(total, [eval_every, log_every, ckpt_every])) if m > start]
    step = start
    pending: list[tuple[int, Any, Any]] = []  # (first step, metrics, health flags) per call
    checked = 0  # calls in `pending` whose health flags were read
    alive = list(range(len(lanes)))

    def check(upto: int) -> None:
        """A lane whose flag is down has diverged: it ends (failed) and the others go on."""
        nonlocal checked
        for first, metrics, ok in pending[checked:upto]:
            ok = np.atleast_1d(np.asarray(ok))
            for i in [i for i in alive if not ok[i]]:  # one flag, or one per seed
                m = jax.device_get(_lane_state(metrics, i, vmapped))
                lanes[i].failed = _divergence(first, m, max_loss, last_ckpt)
                alive.remove(i)
        checked = max(checked, upto)
        if not alive:
            raise lanes[0].failed

    try:
        for mark in marks:
            if stats_only:  # no gradient step: the step count jumps to the mark
                state = {**state, "step": jnp.full_like(state["step"], mark)}
                bar.update(mark - step)
                step = mark
            while step < mark:
                n = min(spc, mark - step)
                if n not in chunks:
                    chunks[n] = compiled(n)
                batch = host_batch(step, n) if streamed else data
                state, metrics, ok = chunks[n](state, batch, run_key)
                pending.append((step, metrics, ok))
                check(len(pending) - 1)  # the previous call's flags: no stall on this one
                step += n
                bar.update(n)
                _inject_fault(step, managers=[lane.mngr for lane in lanes])
            check(len(pending))
            state = boundary(state, mark)
            rows: dict[int, dict[str, float]] = {i: {} for i in alive}
            if pending and (mark % log_every == 0 or mark == total):
                stacked = jax.device_get([m for _, m, _ in pending])
                for i in alive:
                    lane_m = [_lane_state(m, i, vmapped) for m in stacked]
                    rows[i].update({f"train/{k}": float(np.mean(np.concatenate(
                        [m[k] for m in lane_m]))) for k in lane_m[0]})
                pending, checked = [], 0
            if mark % eval_every == 0 or mark == total:
                for i in alive:
                    lanes[i].last_eval = run_evals(_lane_state(state["params"], i, vmapped),
                                                   lanes[i])
                    rows[i].update(lanes[i].last_eval)
            for i, row in rows.items():
                if row:
                    lanes[i].writer.write(mark, row)
            if rows.get(alive[0]):
                bar.set_postfix({k.split("/", 1)[1] if k.startswith("train/") else k:
                                 f"{v:.3f}" for k, v in rows[alive[0]].items()
                                 if k in ("train/loss", "source/test/accuracy",
                                          "target/test/accuracy")})
            if mark % ckpt_every == 0 or mark == total:
                for i in alive:
                    lanes[i].mngr.save(mark, args=ckpt.ocp.args.StandardSave(
                        _lane_state(state, i, vmapped)))
                _inject_fault(mark, "save")
                last_ckpt = mark
        for i in alive:
            lane = lanes[i]
            if not lane.last_eval:  # the final state was restored, not trained: evaluate it
                lane.last_eval = run_evals(_lane_state(state["params"], i, vmapped), lane)
                if not any(r["step"] == total and "target/test/accuracy" in r
                           for r in lane.writer.rows):
                    lane.writer.write(total, lane.last_eval)
        for lane in lanes:
            lane.mngr.wait_until_finished()
    except KeyboardInterrupt:
        for lane in lanes:
            lane.mngr.wait_until_finished()
        raise RunInterrupted(step, lanes[0].mngr.latest_step()) from None
    except Exception:
        # Good checkpoints in flight are kept; a failed save's waiting threads would keep the
        # process alive.
        ckpt.finish_or_abandon([lane.mngr for lane in lanes])
        raise
    finally:
        bar.close()
        for lane in lanes:
            lane.writer.close()
            lane.mngr.close()

    labeled = "target" if "target/y" in method.uses else "source"
    untrained = untrained_head(cfg, params[0], method, freeze, recipe)
    if untrained:
        log.warning("method=%s trains %s, not head/: the accuracies in summary.json are a "
                    "random head's; evaluate the backbone with measure=[cluster] or a transfer "
                    "run (pretrain=...)", cfg["method"]["name"], method.trainable)
    val_policy = (target if labeled == "target" else source or target).val_policy
    num_params = int(sum(np.size(a) for p, a in zip(param_paths(params[0]),
                                                    jax.tree_util.tree_leaves(params[0]),
                                                    strict=True) if p not in stats))
    return [lane.failed or {
        "status": "completed",
        "step": total,
        "seed": lane.seed,
        "method": cfg["method"]["name"],
        "source": roles.source_name,
        "target": target.name,
        "model": cfg["model"]["name"],
        "num_classes": target.num_classes,
        "fingerprint": rundir.fingerprint(lane.cfg),
        "steps_per_call": spc,
        "vmapped_seeds": len(lanes) if vmapped else 1,
        "num_params": num_params,
        **({"head": "untrained (random): the accuracies score a random head"}
           if untrained else {}),
        **lane.last_eval,
        **_selection(lane.writer.rows, labeled, lane.last_eval, total, val_policy),
        "wall_time_s": time.time() - t0,
    } for lane in lanes]
