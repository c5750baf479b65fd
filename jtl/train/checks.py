"""Config checks that run before any data is loaded or step is taken."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from typing import Any

from jtl import schema
from jtl.errors import JtlError
from jtl.models.base import param_paths
from jtl.train import mesh as meshes
from jtl.train.build import Roles
from jtl.transfer import Recipe

log = logging.getLogger("jtl")


def positive_int(value: Any, key: str, minimum: int = 1) -> int:
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
    lanes = "trainer.seeds" if t.get("seeds") is not None else (
        "trainer.search" if t.get("search") is not None else None)
    if lanes and t.get("mesh", "auto") not in ("auto", None, 1):
        raise JtlError(f"{lanes} runs on one device (vmapped); with {lanes}, leave "
                       "trainer.mesh at auto or set it to 1")
    meshes.make_mesh(t.get("mesh", "auto"))
    Recipe.from_cfg(cfg.get("transfer")).check_init(cfg)


def check_batch(tcfg: Mapping[str, Any], roles: Roles, uses: frozenset[str]) -> None:
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


def warn_unaligned(name: str, method: Any, params: Any, trainable: str, freeze: str | None,
                   fixed: Collection[str]) -> bool:
    """Warn (and return True) when `method` aligns the features but no parameter under them
    (backbone/, neck/) trains: its term then moves nothing and the run is source_only's, e.g.
    DANN on a frozen backbone with no neck."""
    if method.aligns() != "features":
        return False
    fixed = set(fixed)
    for p in param_paths(params):
        if p.startswith(("backbone/", "neck/")) and p not in fixed and \
                re.fullmatch(trainable, p) and not (freeze and re.fullmatch(freeze, p)):
            return False
    log.warning("method=%s aligns the features, but nothing under them trains (the backbone "
                "is frozen and there is no trainable neck): its term moves no parameter and "
                "the run equals source_only; add a neck (e.g. neck=bottleneck) or unfreeze "
                "backbone blocks", name)
    return True
