"""A generated sweep for the NTG tests: real composed configs, made-up completed summaries
(no training), so every gap is known in advance."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from tests.conftest import FAST, compose_cfg

SEEDS = (0, 1, 2)
CHANCE_ERR = 0.9  # sklearn digits: 10 classes
# kind -> (overrides, base accuracy, seed slope); distinct slopes make the paired gaps vary
# by seed, so their intervals are not degenerate.
KINDS = {
    "source_only": (["method=source_only"], 0.60, 1.0),
    "dann": (["method=dann"], 0.66, 1.9),
    "target_only": (["method=target_only"], 0.93, 0.4),  # every target label
    "target_only_5": (["method=target_only", "target.per_class=5"], 0.75, 0.7),
    "finetune": (["method=target_only", "target.per_class=5"], 0.80, 1.3),  # + init_from
}
_CONFIGS: dict[str, dict] = {}


def accuracy(kind: str, seed: int) -> float:
    _, base, slope = KINDS[kind]
    return base + slope * (0.013 * seed - 0.004 * seed**2)


def config(kind: str) -> dict:
    if kind not in _CONFIGS:
        cfg = compose_cfg([*FAST, *KINDS[kind][0]])
        _CONFIGS[kind] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    return json.loads(json.dumps(_CONFIGS[kind]))


def write_run(run: Path, cfg: dict, acc: float, status: str = "completed") -> Path:
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(cfg), run / ".hydra" / "config.yaml")
    (run / "summary.json").write_text(json.dumps(
        {"status": status, "step": cfg["trainer"]["steps"], "seed": cfg["seed"],
         "method": cfg["method"]["name"], "target/test/accuracy": acc}))
    return run


def make_sweep(root: Path, kinds: tuple[str, ...] = tuple(KINDS),
               seeds: tuple[int, ...] = SEEDS) -> dict[tuple[str, int], Path]:
    """`root/<kind>/<seed>` for each kind and seed; finetune runs start from the source_only
    run of their seed."""
    out = {}
    for kind in kinds:
        for s in seeds:
            cfg = {**config(kind), "seed": s}
            if kind == "finetune":
                cfg["init_from"] = str(root / "source_only" / str(s))
            out[(kind, s)] = write_run(root / kind / str(s), cfg, accuracy(kind, s))
    return out
