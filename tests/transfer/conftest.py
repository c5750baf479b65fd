"""Fixtures for transfer tests: one small pretrained run shared by the module's tests."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jtl.train import train_and_evaluate
from jtl.train.checkpoint import manager
from tests.conftest import FAST, compose_cfg

# Two backbone blocks (freeze_k), 8x8 digits, a few steps: seconds per run. target_only, also
# for the runs transferred from (a method reading target labels skips label-free selection).
SMALL = [*FAST, "method=target_only", "model.hidden=[32,16]", "trainer.steps=10",
         "trainer.eval_every=10",
         "trainer.checkpoint_every=10", "trainer.log_every=10"]


def final_params(run_dir) -> dict:
    with manager(run_dir / "checkpoints") as m:
        return m.restore(m.latest_step())["params"]


def leaves(tree: dict) -> dict[str, np.ndarray]:
    from jtl.models.base import path_str

    return {path_str(p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A completed run on 8x8 digits (the model the recipes start from)."""
    run = tmp_path_factory.mktemp("src") / "run"
    train_and_evaluate(compose_cfg(SMALL), run)
    return run


@pytest.fixture
def small_cfg():
    return lambda *overrides: compose_cfg([*SMALL, *overrides])
