"""`train_and_evaluate(cfg, workdir)`: the one trainer every method runs on.

The path from a yaml key to a number in `summary.json`, in pieces: `jtl.train.checks` checks
the config (its typed schema, then what needs several keys); `jtl.train.build` makes the
domains by role, the method, the network and the initial parameters; `jtl.train.loop` runs
the compiled chunks between marks (evaluations, logs, checkpoints, the method's hook) over an
explicit loop state; `jtl.train.lanes` holds the seeds trained together (`trainer.seeds`: one
vmapped program); `jtl.train.selection` reads each rule's choice from the evaluations and
`jtl.train.summary` writes what the run was. This module owns the run dir around them.

The run dir is owned through `jtl.rundir.claim` (locked, identity-checked); every compiled call
returns one health flag (finite metrics and parameters, loss under `trainer.max_loss`), so a
diverging run stops with its step and loss terms named and never checkpoints non-finite state.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
from flax import nnx
from omegaconf import DictConfig

from jtl import inputs, rundir
from jtl.errors import JtlError
from jtl.methods.base import Boundary
from jtl.train import checkpoint as ckpt
from jtl.train import compile_cache, distributed, online
from jtl.train import loop as loops
from jtl.train import mesh as meshes
from jtl.train import search as searches
from jtl.train.backend import runs_conv
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
    model_input_shape,
    network,
    resolve_roles,
    same_label_space,
    untrained_head,
)
from jtl.train.checks import check_batch, check_config, positive_int, warn_unaligned
from jtl.train.dev import make_dev
from jtl.train.lanes import (
    Lane,
    check_lanes,
    common_start,
    lane_config,
    lanes_change_results,
    plain,
    stack,
)
from jtl.train.loop import (  # noqa: F401  (re-exported)
    DEVICE_DATA_LIMIT,
    LoopState,
    RunInterrupted,
    boundaries,
    boundary_key,
    steps_per_call,
)
from jtl.train.optim import build_optimizer
from jtl.train.step import frozen_norms, init_state, make_online_step, make_step, stat_paths
from jtl.train.summary import failure, summaries
from jtl.train.writer import MetricWriter
from jtl.transfer import Recipe

log = logging.getLogger("jtl")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_plain = plain  # the old private name (tests)


def train_and_evaluate(cfg: DictConfig | Mapping[str, Any], workdir: str | Path,
                       overrides: list[str] | None = None,
                       on_complete: Any | None = None) -> dict:
    """Train one run into `workdir` (resuming from its latest valid checkpoint) and return its
    summary. A completed run of the same config is not retrained; a dir holding another
    config's run is refused (or moved aside with `overwrite=true`). `on_complete(workdir,
    summary)` runs after a completed summary is written (e.g. end-of-training measures)."""
    distributed.initialize()  # before any device use; a no-op unless the environment says so
    raw, cfg = cfg, resolve_roles(plain(cfg))
    cfg.pop(inputs.KEY, None)  # a saved config's record: recorded anew below, not an input
    check_config(cfg)
    compile_cache.enable()  # a second run of the same shapes starts without compiling
    workdir = Path(workdir)
    if cfg["trainer"].get("seeds") is not None or cfg["trainer"].get("search") is not None:
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
                    rundir.record_failure(workdir, failure(e, cfg, t0))
                raise
            if primary:
                rundir.record_completed(workdir, summary)
        if on_complete is not None and primary:
            on_complete(workdir, summary)
    return summary


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
    diverges fails alone. Returns {"status", "seeds", "runs": {seed: summary}}.

    `trainer.search` (jtl/train/search.py): the lanes are hyper-parameter samples (x seeds),
    `<workdir>/sample<k>[/seed<s>]`, one program per group of lanes sharing every static key;
    "runs" is then keyed by the lanes' names."""
    raw, cfg = cfg, resolve_roles(plain(cfg))  # sources named by name: as each lane sees them
    seeds = [positive_int(s, "trainer.seeds[]", minimum=0)
             for s in cfg["trainer"].get("seeds") or [cfg["seed"]]]
    if not seeds or len(set(seeds)) != len(seeds):
        raise JtlError(f"trainer.seeds={seeds}: a non-empty list of distinct seeds")
    change = lanes_change_results(cfg)
    if cfg["trainer"].get("search") is not None:
        groups = searches.lanes(raw, cfg, workdir, seeds,
                                lambda n: n if change and n > 1 else None)
        lanes = [lane for g in groups for lane in g]
        width = None  # per program: each lane's trainer.lanes
    else:
        width = len(seeds) if change and len(seeds) > 1 else None
        lanes = [Lane(lane_config(raw, s, width), Path(workdir) / f"seed{s}") for s in seeds]
        check_lanes(lanes)
        groups = [lanes]
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
                summaries[lane.key] = done
        for group in groups:
            todo = [lane for lane in group if lane.key not in summaries]
            keys = {lane.key for lane in group}
            n = todo[0].cfg["trainer"].get("lanes") if todo else None
            if todo and n and len(todo) < n:
                raise JtlError(
                    f"trainer.seeds={seeds}: {sorted(k for k in summaries if k in keys)}"
                    f" are completed and {[ln.key for ln in todo]} are not; under Adam with "
                    "BatchNorm a lane's result depends on how many lanes train beside it "
                    f"(trainer.lanes={n} is part of these runs' identity), so the rest cannot "
                    "be trained alone: run them in another dir (hydra.run.dir=...) with "
                    "trainer.seeds of the same length")
            if not todo:
                continue
            t0 = time.time()
            try:  # a search's program: its lanes' shared config (seeds: the config itself)
                results = _train_lanes(todo[0].cfg if todo[0].hparams is not None else cfg,
                                       todo, t0, vmapped=True)
            except Exception as e:  # shared failure (data, config), or every lane diverged
                results = [lane.failed or e for lane in todo]
            for lane, r in zip(todo, results, strict=True):
                if isinstance(r, Exception):
                    rundir.record_failure(lane.workdir, failure(r, lane.cfg, t0))
                    what = f"seed {lane.seed}" if lane.name is None else lane.name
                    failures.append(f"{what} ({lane.workdir}): {r}")
                else:
                    rundir.record_completed(lane.workdir, r)
                    summaries[lane.key] = r
        if on_complete is not None:
            for lane in lanes:
                if lane.key in summaries:
                    on_complete(lane.workdir, summaries[lane.key])
    if failures:
        what = "seeds" if lanes[0].name is None else "lanes"
        raise JtlError(f"{len(failures)} of {len(lanes)} {what} failed: " + "; ".join(failures))
    out = {"status": "completed", "seeds": seeds,
           "runs": {lane.key: summaries[lane.key] for lane in lanes}}
    if lanes[0].search is not None:
        out["samples"] = sorted({lane.search["sample"] for lane in lanes})
    return out


def _train(cfg: dict, workdir: Path, t0: float) -> dict:
    result = _train_lanes(cfg, [Lane(cfg, workdir)], t0, vmapped=False)[0]
    if isinstance(result, Exception):
        raise result
    return result


def _train_lanes(cfg: dict, lanes: list[Lane], t0: float, vmapped: bool
                 ) -> list[dict | Exception]:
    """Train one run, or several seeds of one config at once (`vmapped`: one compiled program
    over a leading seed axis of the state, each seed drawing its own batches). Returns each
    lane's summary, or the exception that ended that lane alone (a diverged seed)."""
    tcfg = cfg["trainer"]
    total = int(tcfg["steps"])
    built = build_all(lanes[0].cfg)
    roles, method, net = built.roles, built.method, built.net
    stream = cfg.get("online")
    if stream:  # the target stream replaces the target train split; one pass sets the steps
        online.check(stream, roles, method)
        roles, total = online.stream_roles(stream, roles, int(tcfg["batch_size"]))
    source, target = roles.source, roles.target
    check_batch(tcfg, roles, method.uses)
    graphdef, _ = nnx.split(net)
    recipe = Recipe.from_cfg(cfg.get("transfer"))
    inits: dict[int, Any] = {}  # a search's lanes of one seed start from the same parameters
    for i, lane in enumerate(lanes):
        if lane.seed not in inits:
            inits[lane.seed] = initial_params(lane.cfg, target, method, net if i == 0 else None,
                                              source)
    params = [inits[lane.seed] for lane in lanes]
    blocks = len(net.backbone.blocks)
    stats = stat_paths(net)  # batch-norm statistics: state, not trained, not counted
    freeze = recipe.freeze(cfg.get("freeze"), blocks)
    stats_only = method.trainable is None  # no gradient step: the boundary hook (or stream) only
    tx = build_optimizer(cfg["optim"], params[0], total,
                         ".*" if stats_only else method.trainable,
                         ".*" if stats_only else freeze, recipe.all_groups(blocks), fixed=stats)
    if not stats_only:
        warn_unaligned(cfg["method"]["name"], method, params[0], method.trainable, freeze, stats)
    mesh = None if vmapped else meshes.make_mesh(tcfg.get("mesh", "auto"))
    meshes.check_batch(mesh, int(tcfg["batch_size"]))
    keep = int(tcfg.get("keep_checkpoints", 2))
    for lane in lanes:
        lane.mngr = ckpt.run_manager(lane.workdir / rundir.CHECKPOINTS, keep)
        lane.run_key = jax.random.fold_in(jax.random.key(lane.seed), 1)
    # The method's own state at step 0, from each lane's initial parameters (None: it has none).
    mstates = [(lane.method or method).init_state(p, Boundary(0, total, graphdef, roles,
                                                              boundary_key(lane.seed, 0)))
               for p, lane in zip(params, lanes, strict=True)]
    def fresh(p: Any, m: Any) -> dict:
        state = init_state(p, tx, m)
        return {**state, "online": online.initial_scores()} if stream else state

    states = common_start(lanes, meshes.replicate(fresh(params[0], mstates[0]), mesh))
    if not int(states[0]["step"]):  # fresh: each lane from its own parameters
        states = [meshes.replicate(fresh(p, m), mesh) for p, m in zip(params, mstates,
                                                                      strict=True)]
    start = int(states[0]["step"])
    if start:
        log.info("resuming %s from step %d", ", ".join(str(ln.workdir) for ln in lanes), start)
    for lane in lanes:
        lane.writer = MetricWriter(lane.workdir, start, bool(tcfg.get("tensorboard", True)),
                                   files=distributed.is_primary())
    # Label-free selection (DEV) for one labeled source and methods that read no target labels.
    for lane in lanes:
        lane.dev = (None if "target/y" in method.uses or len(roles.sources) != 1
                    or source.labels != "all" else make_dev(graphdef, source, target, lane.seed))
    spc = steps_per_call(tcfg, tcfg["steps_per_call"] == "auto" and jax.default_backend() == "cpu"
                         and runs_conv(net, model_input_shape(cfg, target)))
    frozen = frozen_norms(net, freeze)
    per_lane = None if lanes[0].hparams is None else searches.per_lane(
        method, tx, cfg["optim"], lambda o: build_optimizer(
            o, params[0], total, method.trainable, freeze, recipe.all_groups(blocks),
            fixed=stats))
    step_fn = make_step(graphdef, method, tx, total, frozen, per_lane)
    if stream:
        step_fn = make_online_step(step_fn, graphdef, frozen, stats_only,
                                   bool(stream.get("episodic")))
    prog = loops.make_program(cfg, lanes, method, roles, graphdef, step_fn, spc, vmapped, mesh,
                              total, online=bool(stream))
    ls = LoopState(state=stack(states) if vmapped else states[0], step=start,
                   last_ckpt=start or None, alive=list(range(len(lanes))))
    loops.run(prog, ls)
    if stream:
        for i in ls.alive:
            scores = jax.device_get(loops.lane_state(ls.state["online"], i, vmapped))
            lanes[i].last_eval.update(online.summary(scores))
    return summaries(cfg, prog, params[0], stats, freeze, recipe, t0)
