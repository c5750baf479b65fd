"""Lanes: several runs of one config trained as one vmapped program (`trainer.seeds`, and the
samples of `trainer.search`: jtl/train/search.py).

Each lane is one ordinary run (its own dir, config, identity, checkpoints and metrics); the
lanes share data, model and every static setting, differ in the seed (and, in a search, in
the traced hyper-parameters the step receives per lane: `Lane.hparams`), and their states are
stacked on a leading axis. How a lane's config is derived, when vmapping changes the numbers
(and so enters the identity), and how lanes resumed from different checkpoints are brought to
one step.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from omegaconf import DictConfig, OmegaConf, open_dict

from jtl import rundir
from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.models import build_network
from jtl.train import checkpoint as ckpt
from jtl.train.build import resolve_roles
from jtl.train.step import stat_paths
from jtl.train.writer import MetricWriter


@dataclasses.dataclass
class Lane:
    """One run inside a training that may vmap several: its config, dir and writers; in a
    search, its name (`sample<k>/seed<s>`), its traced hyper-parameters (`hparams`, the step's
    `hp`), its method at its own values and what it was drawn as (`search`)."""

    cfg: dict
    workdir: Path
    name: str | None = None
    hparams: dict | None = None
    method: Any = None
    search: dict | None = None
    mngr: Any = None
    writer: MetricWriter | None = None
    dev: Any = None
    run_key: Any = None
    last_eval: dict = dataclasses.field(default_factory=dict)
    failed: JtlError | None = None

    @property
    def seed(self) -> int:
        return int(self.cfg["seed"])

    @property
    def key(self) -> int | str:
        """How results name the lane: its seed, or a search lane's name."""
        return self.seed if self.name is None else self.name


def plain(cfg: Any) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def lane_state(state: Any, i: int, vmapped: bool) -> Any:
    """Lane `i`'s slice of a (possibly stacked) pytree."""
    return jax.tree_util.tree_map(lambda a: a[i], state) if vmapped else state


def stack(trees: list[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def lane_config(cfg: DictConfig | Mapping[str, Any], seed: int,
                lanes: int | None = None, values: Mapping[str, Any] | None = None) -> dict:
    """One seed of a `trainer.seeds` run has the config of a separate run of that seed, so its
    run dir is an ordinary run (same identity) to jtl.report, NTG pairing and load_run; except
    where the program's width changes the numbers (`lanes_change_results`): then `lanes` (the
    seeds trained together) is `trainer.lanes`, part of the identity. A composed (Hydra) config
    is resolved per seed, so a key interpolating `${seed}` follows it as it would in a separate
    run. `values` (a search sample: dotted key -> value) are written in and `trainer.search`
    cleared: the lane is a separate run of those values."""
    if isinstance(cfg, DictConfig):
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.seed, cfg.trainer.seeds = seed, None
            if "search" in cfg.trainer:
                cfg.trainer.search = None
            if lanes is not None:
                cfg.trainer.lanes = lanes
            for k, v in (values or {}).items():
                OmegaConf.update(cfg, k, v, merge=False)
        return resolve_roles(plain(cfg))
    out = resolve_roles(copy.deepcopy(dict(cfg)))
    out["seed"], out["trainer"] = seed, {**out["trainer"], "seeds": None}
    if "search" in out["trainer"]:
        out["trainer"]["search"] = None
    if lanes is not None:
        out["trainer"]["lanes"] = lanes
    for k, v in (values or {}).items():
        *head, last = k.split(".")
        node = out
        for part in head:
            node[part] = dict(node[part])
            node = node[part]
        node[last] = v
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
    net = nnx.eval_shape(lambda: build_network(cfg["model"], 2, method, 0, neck=cfg.get("neck")))
    return bool(stat_paths(net))


def check_lanes(lanes: list[Lane]) -> None:
    """One vmapped program shares data, model and every setting but the seed: a key that
    follows the seed (e.g. `target.split_seed: ${seed}`) would give each lane a config it was
    not trained with."""
    for lane in lanes[1:]:
        keys = [k for k in rundir.differing_keys(lanes[0].cfg, lane.cfg) if k != "seed"]
        if keys:
            raise JtlError(f"trainer.seeds: seeds {lanes[0].seed} and {lane.seed} differ in "
                           f"{keys}, not only in the seed; one vmapped program trains one "
                           "config: run the seeds separately (-m seed=...)")


def common_start(lanes: list[Lane], state: Any) -> list[Any]:
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
