"""The pretraining cache: a transfer run names its pretraining run by config (`pretrain=`).

`pretrain` is an experiment name (`pretrain=digits_u2m` composes `experiment=digits_u2m`) or a
list of overrides (`pretrain=[experiment=digits_u2m,model=mlp]`), composed from `conf/` as the
CLI would. Unless it sets `seed=`, the pretraining run takes the transfer run's seed, so seed s
of a study fine-tunes its own pretrained model and seeds stay independent: a grid of recipes x
k x seeds pretrains once per seed, not once per run.

The run is looked up by identity (`jtl.rundir.fingerprint`) under `paths.pretrain_dir`
(default `runs/pretrain`) in the one find-or-train cache (`jtl.results.cache`):
`<root>/<fingerprint>`, else the one completed run of that config below the root. A missing
one is trained there first, in this process, under a lock (`<root>/.<fingerprint>.lock`), so
parallel sweep jobs train it once; the transfer run's `init_from` then points at it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jtl import inputs, rundir
from jtl.errors import JtlError
from jtl.results.cache import RunCache

log = logging.getLogger("jtl")
DEFAULT_ROOT = Path("runs") / "pretrain"
# Trains one run: (config, run dir) -> summary; the trainer passes train_and_evaluate.
Train = Callable[[dict, Path], Any]


def pretrain_overrides(spec: str | Sequence[str], seed: int,
                       paths: Mapping[str, Any] | None = None) -> list[str]:
    """The overrides composing the pretraining run of `spec` for a transfer run of `seed`."""
    if isinstance(spec, str):
        items = [spec if "=" in spec else f"experiment={spec}"]
    elif isinstance(spec, Sequence) and all(isinstance(s, str) for s in spec):
        items = list(spec)
    else:
        raise JtlError(f"pretrain={spec!r}: an experiment name or a list of overrides")
    if not any(o.lstrip("+").startswith("seed=") for o in items):
        items.append(f"seed={int(seed)}")
    for k, v in (paths or {}).items():  # presentation keys: where data and caches live
        if v is not None:
            items.append(f"++paths.{k}={quoted(str(v))}")
    return items


def quoted(value: str) -> str:
    """`value` as a single-quoted value of Hydra's override grammar, read back verbatim: a
    quote is escaped, a run of backslashes before a quote (or the closing quote) is doubled,
    and `${` is escaped so a path is never taken for an interpolation."""
    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)
    return "'" + re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", body) + "'"


def compose(overrides: list[str]) -> dict:
    """The pretraining run's config, composed as the CLI does (jtl.config.compose)."""
    from jtl import config

    try:
        return config.compose(overrides)
    except JtlError as e:
        raise JtlError(f"pretrain: {e}") from e.__cause__


def cache(root: Path) -> RunCache:
    """The pretraining runs under `root`, by fingerprint (`jtl.results.cache`)."""
    return RunCache(root, rundir.fingerprint, lambda fp: (root / fp, root / f".{fp}.lock"),
                    describe=lambda fp: f"the pretraining run of fingerprint {fp}")


def find_completed(root: Path, fp: str) -> Path | None:
    """The completed run of fingerprint `fp` under `root`: `<root>/<fp>`, else the one below."""
    return cache(root).find(fp)


def cache_root(paths: Mapping[str, Any] | None) -> Path:
    return Path((paths or {}).get("pretrain_dir") or DEFAULT_ROOT).resolve()


def ensure_pretrained(spec: str | Sequence[str], seed: int, paths: Mapping[str, Any] | None,
                      train: Train) -> Path:
    """The completed pretraining run of `spec` (seed `seed`), trained first if missing."""
    pcfg = compose(pretrain_overrides(spec, seed, paths))
    # The fingerprint of the config as the trainer saves it, its inputs recorded.
    fp = rundir.fingerprint(inputs.record(pcfg))

    def train_into(run_dir: Path) -> None:
        log.info("pretraining %s (seed %d) into %s", spec, seed, run_dir)
        train(pcfg, run_dir)

    return cache(cache_root(paths)).get(fp, train_into)


def resolve(cfg: Mapping[str, Any], train: Train) -> dict:
    """`cfg` with `init_from` set to its `pretrain` run (found or trained); unchanged without
    `pretrain`."""
    spec = cfg.get("pretrain")
    if not spec:
        return dict(cfg)
    if cfg.get("init_from"):
        raise JtlError("give pretrain=<config> or init_from=<run dir>, not both")
    run = ensure_pretrained(spec, int(cfg.get("seed", 0)), cfg.get("paths"), train)
    return {**cfg, "init_from": str(run)}
