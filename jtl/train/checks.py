"""Config checks that run before any data is loaded or step is taken."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jtl import schema
from jtl.errors import JtlError
from jtl.train import mesh as meshes
from jtl.train.build import Roles
from jtl.transfer import Recipe


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
