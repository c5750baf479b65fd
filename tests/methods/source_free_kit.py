"""A source model for the source-free methods' tests: an MLP with BatchNorm trained on
scikit-learn digits, adapted to inverted digits (`target.shifts=[invert]`), and the helpers
to read a run's parameters."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from tests.conftest import compose_cfg

BASE = ["domain@target=sklearn_digits", "target.shifts=[invert]", "model=mlp",
        "model.hidden=[32]", "model.norm=batch", "trainer=debug", "trainer.progress=false",
        "trainer.tensorboard=false"]


def source_run(root: Path) -> Path:
    """The trained source model (40 steps of source_only on upright digits)."""
    from jtl.train import train_and_evaluate

    run = root / "source"
    train_and_evaluate(compose_cfg([*BASE, "domain@source=sklearn_digits",
                                    "target.shifts=[]"]), run)
    return run


def adapted(src: Path, run: Path, *overrides: str) -> dict:
    """A source-free run from `src`; its summary."""
    from jtl.train import train_and_evaluate

    return train_and_evaluate(compose_cfg([*BASE, "source=null", f"init_from={src}",
                                           *overrides]), run)


def params_at(run: Path, step: int | None = None) -> dict:
    """The run's checkpointed train state (its last step by default)."""
    from jtl.train.checkpoint import manager

    with manager(run / "checkpoints") as m:
        return m.restore(m.latest_step() if step is None else step)


def changed(a: dict, b: dict) -> dict[str, bool]:
    """Parameter path -> whether its value differs between two parameter trees."""
    from jtl.models.base import param_paths

    return {p: not np.array_equal(np.asarray(x), np.asarray(y))
            for p, x, y in zip(param_paths(a), jax.tree_util.tree_leaves(a),
                               jax.tree_util.tree_leaves(b), strict=True)}


def rows(run: Path) -> list[dict]:
    return [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
