"""The random hyper-parameter search as one program (`trainer.search`): DomainBed's samples as
lanes of one vmapped training, each lane an ordinary run dir.

    trainer.search: {samples: 20}          # hparams seeds 0..19 (0: the config as composed)
    trainer.seeds: [0, 1, 2]               # the trials: 20 x 3 lanes, <run dir>/sample<k>/seed<s>

Sampling is DomainBed's (`domainbed/hparams_registry.py`, `scripts/train.py`), draw for draw:
sample k > 0 of trial t draws every hyper-parameter `name` from its own
`np.random.RandomState(seed_hash(seed_hash(k, t), name))`, `seed_hash` the md5 of the
arguments' `str`; sample 0 is the default setting (here: the config as composed, DomainBed's
defaults at jtl's yamls). So a trial's samples are its own, as in DomainBed's sweeps, unless
`trial_seed` names one trial whose samples every seed shares (then a configuration has a run
per seed, which `choose_across` pools). The distributions (`SPACE`, `METHOD_SPACES`) are
DomainBed's for its MNIST data sets (`small`: every domain is colored_mnist or rotated_mnist)
or for its other data sets.

What runs in one program: a lane's config differs from the others' in its seed and in the
**traced** keys (learning rate, weight decay, a method's continuous weights and its anneal
step, compared to the step counter as a traced value): the compiled step receives them per
lane as `hp` (`{"optim": {...}, "method": {...}}`), builds the optimizer from them (optax
takes a traced learning rate and decay; the optimizer state's structure does not depend on
them, so checkpoints are a separate run's) and the method with those fields replaced
(`with_values`). Keys that change shapes or Python control flow (the batch size) are static:
lanes are grouped by their static config into one program per group; `fix` holds keys at the
config's value instead of sampling them (default: the batch size, so a search is one program
per config; DomainBed samples it).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optax
from omegaconf import DictConfig

from jtl import rundir
from jtl.errors import JtlError
from jtl.methods import Method, build_method
from jtl.schema import bound
from jtl.train.lanes import Lane, lane_config

# DomainBed's SMALL_IMAGES (Debug28, RotatedMNIST, ColoredMNIST) as jtl domains.
SMALL_IMAGES = frozenset({"colored_mnist", "rotated_mnist"})


@dataclasses.dataclass(frozen=True)
class Search:
    """`trainer.search`: `samples` hyper-parameter seeds from `start` (DomainBed's
    n_hparams_from; 0 is the default setting), drawn from `space` (`domainbed`), with the keys
    in `fix` held at the config's value. `trial_seed`: null draws each seed's own samples
    (DomainBed), an int gives every seed the samples of that trial."""

    samples: int = bound(ge=1, le=10_000, default=20)
    start: int = bound(ge=0, le=2**30, default=0)
    space: Literal["domainbed"] = "domainbed"
    fix: list[str] = dataclasses.field(default_factory=lambda: ["trainer.batch_size"])
    trial_seed: int | None = bound(ge=0, le=2**30, default=None)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> Search:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise JtlError(f"trainer.search has no key(s) {unknown}; it takes {sorted(known)}")
        return cls(**{k: (list(v) if k == "fix" else v) for k, v in cfg.items()})


@dataclasses.dataclass(frozen=True)
class LogUniform:
    """DomainBed's `base ** r.uniform(lo, hi)` (`int(...)` when `integer`) for its hparam
    `name`, written to the config key `key`; `traced`: a value the compiled step takes per
    lane (False: it changes shapes, so lanes with other values are another program)."""

    name: str
    key: str
    lo: float
    hi: float
    base: float = 10.0
    integer: bool = False
    traced: bool = True

    def draw(self, r: np.random.RandomState) -> float | int:
        v = self.base ** r.uniform(self.lo, self.hi)
        return int(v) if self.integer else float(v)

    def contains(self, v: float) -> bool:
        lo, hi = self.base ** self.lo, self.base ** self.hi
        return (int(lo) if self.integer else lo) <= v <= hi


@dataclasses.dataclass(frozen=True)
class Uniform(LogUniform):
    """DomainBed's `r.uniform(lo, hi)`."""

    def draw(self, r: np.random.RandomState) -> float | int:
        v = r.uniform(self.lo, self.hi)
        return int(v) if self.integer else float(v)

    def contains(self, v: float) -> bool:
        return self.lo <= v <= self.hi


# DomainBed's dataset-dependent hparams (lr, weight_decay, batch_size): small images, others.
# Its MNIST data sets have weight decay 0 (`lambda r: 0.`): not searched, the config's value.
SPACE = {
    True: (LogUniform("lr", "optim.lr", -4.5, -2.5),
           LogUniform("batch_size", "trainer.batch_size", 3, 9, 2, True, traced=False)),
    False: (LogUniform("lr", "optim.lr", -5, -3.5),
            LogUniform("weight_decay", "optim.weight_decay", -6, -2),
            LogUniform("batch_size", "trainer.batch_size", 3, 5.5, 2, True, traced=False)),
}
# Each jtl method's rows of DomainBed's algorithm-specific block (ERM = source_only: none). A
# method file of DomainBed's algorithms adds its row here.
METHOD_SPACES: dict[str, tuple[LogUniform, ...]] = {
    "source_only": (),
    "irm": (LogUniform("irm_lambda", "method.weight", -1, 5),
            LogUniform("irm_penalty_anneal_iters", "method.anneal_steps", 0, 4, integer=True)),
    "vrex": (LogUniform("vrex_lambda", "method.weight", -1, 5),
             LogUniform("vrex_penalty_anneal_iters", "method.anneal_steps", 0, 4,
                        integer=True)),
    "group_dro": (LogUniform("groupdro_eta", "method.eta", -3, -1),),
    "mixup": (LogUniform("mixup_alpha", "method.alpha", -1, 1),),
    # mldg's n_meta_test (DomainBed: choice [1, 2]) changes shapes and is 1 of 2 sources:
    # not searched; dg_dann/cdann search lambda only (DomainBed also draws the discriminator's
    # width, depth, dropout, own lr, decay and steps, beta1 and a gradient penalty, which
    # jtl's discriminator does not take per lane). fish: DomainBed's meta_lr is jtl's optim.lr,
    # its lr jtl's inner_lr, so it has no row (yet).
    "mldg": (LogUniform("mldg_beta", "method.beta", -1, 1),),
    "rsc": (Uniform("rsc_f_drop_factor", "method.f_drop", 0, 0.5),
            Uniform("rsc_b_drop_factor", "method.b_drop", 0, 0.5)),
    "sagnet": (LogUniform("sag_w_adv", "method.weight", -2, 1),),
    "dg_coral": (LogUniform("mmd_gamma", "method.weight", -1, 1),),
    "dg_mmd": (LogUniform("mmd_gamma", "method.weight", -1, 1),),
    "dg_dann": (LogUniform("lambda", "method.weight", -2, 2),),
    "cdann": (LogUniform("lambda", "method.weight", -2, 2),),
}


def seed_hash(*args: Any) -> int:
    """DomainBed's `misc.seed_hash`: an integer hash of the arguments' str, < 2**31."""
    return int(hashlib.md5(str(args).encode("utf-8")).hexdigest(), 16) % (2**31)


def domain_names(cfg: Mapping[str, Any]) -> list[str]:
    sources = cfg.get("sources") or [cfg.get("source") or {}]
    return [str((d if isinstance(d, Mapping) else {"name": d}).get("name")) for d in
            [*sources, cfg.get("target") or {}]]


def space(cfg: Mapping[str, Any], search: Search) -> list[LogUniform]:
    """The distributions a run's search draws from (fixed keys left out)."""
    method = cfg["method"]["name"]
    if method not in METHOD_SPACES:
        raise JtlError(f"trainer.search: no DomainBed space for method={method} (it has "
                       f"{sorted(METHOD_SPACES)}); add its row to METHOD_SPACES in "
                       "jtl/train/search.py, or search another method")
    small = all(n in SMALL_IMAGES for n in domain_names(cfg))
    dists = [*SPACE[small], *METHOD_SPACES[method]]
    keys = {d.key for d in dists}
    stray = sorted(set(search.fix) - keys)
    if stray:
        raise JtlError(f"trainer.search.fix={list(search.fix)}: {stray} are not searched for "
                       f"method={method}; it searches {sorted(keys)}")
    return [d for d in dists if d.key not in search.fix]


def sample(dists: Sequence[LogUniform], hparams_seed: int, trial_seed: int
           ) -> dict[str, float | int]:
    """{config key: value} of DomainBed's sample `hparams_seed` for trial `trial_seed`
    (`random_hparams(..., seed_hash(hparams_seed, trial_seed))`); sample 0: {} (the defaults,
    i.e. the config's own values)."""
    if hparams_seed == 0:
        return {}
    random_seed = seed_hash(hparams_seed, trial_seed)
    return {d.key: d.draw(np.random.RandomState(seed_hash(random_seed, d.name))) for d in dists}


def get(cfg: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def without(cfg: Mapping[str, Any], keys: Sequence[str]) -> dict:
    """`cfg` (plain) with the dotted `keys` removed: what the lanes of one program share."""
    out = copy.deepcopy(dict(cfg))
    for key in keys:
        *head, last = key.split(".")
        node = out
        for part in head:
            node = node.get(part) or {}
        node.pop(last, None) if isinstance(node, dict) else None
    return out


def traced_values(cfg: Mapping[str, Any], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A lane's traced hyper-parameters as the step's `hp`: {"optim": {"lr": ...},
    "method": {"weight": ...}}, numpy scalars (int32 for integer keys, float32 else)."""
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        group, name = key.split(".", 1)
        v = get(cfg, key)
        out.setdefault(group, {})[name] = np.asarray(
            v, np.int32 if isinstance(v, int) and not isinstance(v, bool) else np.float32)
    return out


def lanes(raw: DictConfig | Mapping[str, Any], cfg: Mapping[str, Any], workdir: Path,
          seeds: Sequence[int], width: Callable[[int], int | None]) -> list[list[Lane]]:
    """The search's lanes, grouped into programs (lanes sharing every static key): sample k
    of seed s is `<workdir>/sample<k>/seed<s>` (`<workdir>/sample<k>` without
    `trainer.seeds`), with the config of a separate run of those values. `width(n)`: the
    `trainer.lanes` of a program of n lanes (None: vmapping does not change results)."""
    search = Search.from_cfg(cfg["trainer"]["search"])
    if cfg.get("online"):
        raise JtlError("trainer.search with online=...: a search trains offline runs; run "
                       "the stream per setting")
    dists = space(cfg, search)
    traced = [d.key for d in dists if d.traced]
    per_seed = cfg["trainer"].get("seeds") is not None
    made = []
    for k in range(search.start, search.start + search.samples):
        for s in seeds:
            trial = s if search.trial_seed is None else search.trial_seed
            values = sample(dists, k, trial)
            name = f"sample{k}/seed{s}" if per_seed else f"sample{k}"
            lane = Lane(lane_config(raw, s, values=values), Path(workdir) / name, name=name)
            lane.search = {"sample": k, "trial_seed": trial, "space": search.space,
                           "values": values}
            made.append(lane)
    groups: dict[str, list[Lane]] = {}
    for lane in made:
        shared = without(lane.cfg, ["seed", *traced])
        groups.setdefault(rundir.fingerprint(shared), []).append(lane)
    out = []
    for group in groups.values():
        n = width(len(group))
        for lane in group:
            if n is not None:
                lane.cfg["trainer"]["lanes"] = n
            lane.method = build_method(lane.cfg["method"])  # each lane's values checked
            lane.hparams = traced_values(lane.cfg, traced)
        out.append(group)
    return out


def with_values(method: Method, values: Mapping[str, Any]) -> Method:
    """`method` with the fields in `values` replaced by (traced) arrays. Its `__post_init__`
    checks are not rerun on tracers: every lane's concrete values were checked when its
    method was built (`lanes`)."""
    out = copy.copy(method)
    names = {f.name for f in dataclasses.fields(method)}
    for k, v in values.items():
        if k not in names:
            raise JtlError(f"trainer.search: method {type(method).__name__} has no field {k}")
        object.__setattr__(out, k, v)
    return out


def per_lane(method: Method, tx: optax.GradientTransformation, optim_cfg: Mapping[str, Any],
             make_tx: Callable[[Mapping[str, Any]], optax.GradientTransformation]
             ) -> Callable[[Mapping[str, Any]], tuple[Method, optax.GradientTransformation]]:
    """`hp -> (method, optimizer)` of one lane inside the compiled step: the traced values
    replace the config's (`make_tx` builds the run's optimizer from an optim config)."""

    def build(hp: Mapping[str, Any]) -> tuple[Method, optax.GradientTransformation]:
        m = with_values(method, hp.get("method", {})) if hp.get("method") else method
        t = make_tx({**optim_cfg, **hp["optim"]}) if hp.get("optim") else tx
        return m, t

    return build


def trace_error(e: Exception, method: Method) -> JtlError:
    """A method that reads a traced field in Python control flow (`if self.weight:`)."""
    return JtlError(f"trainer.search: method {type(method).__name__} uses a searched field "
                    f"in Python control flow ({type(e).__name__}); list that key in "
                    "trainer.search.fix, or write the method with jnp.where")

