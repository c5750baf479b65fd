"""Divergence is caught where it happens (issue 8, seventh bullet).

On the old main only a logged NaN/inf loss stopped a run: Adam at lr=1e6 gave loss 5e30 and
"completed" at 15.8%, and NaN parameters could be checkpointed, so the advised fix failed.
"""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest

from jtl import rundir
from jtl.errors import JtlError
from tests.conftest import compose_cfg
from tests.reliability.kit import ARGS, checkpoint_steps, params_at


def _finite(tree) -> bool:
    return all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(tree))


def test_exploding_loss_stops_the_run_with_step_and_terms(tmp_path):
    from jtl.train import train_and_evaluate

    run = tmp_path / "run"
    with pytest.raises(JtlError) as e:
        train_and_evaluate(compose_cfg([*ARGS, "optim.lr=1e6", "trainer.max_loss=1e4"]), run)
    msg = str(e.value)
    assert "diverged at step" in msg and "cls_loss=" in msg and "max_loss" in msg
    s = rundir.read_summary(run)
    assert s["status"] == "failed" and "diverged" in s["error"]
    for step in checkpoint_steps(run) if (run / "checkpoints").is_dir() else []:
        assert _finite(params_at(run, step)), f"checkpoint {step} holds non-finite values"


def test_divergence_mid_run_keeps_only_the_good_checkpoints(tmp_path):
    """SGD warming up to a too-large lr blows up after its first checkpoint: that good
    checkpoint stays, nothing later is written, and the step named is past it."""
    from jtl.train import train_and_evaluate

    run = tmp_path / "run"
    cfg = compose_cfg([*ARGS, "optim=sgd", "optim.lr=5", "optim.warmup=30",
                       "optim.schedule=constant", "trainer.max_loss=50",
                       "trainer.checkpoint_every=5", "trainer.log_every=5",
                       "trainer.eval_every=5"])
    with pytest.raises(JtlError, match=r"diverged at step (\d+)") as e:
        train_and_evaluate(cfg, run)
    steps = checkpoint_steps(run)
    assert steps, "expected a checkpoint before the blow-up"
    for step in steps:
        assert _finite(params_at(run, step))
    bad = int(re.search(r"diverged at step (\d+)", str(e.value)).group(1))
    assert bad > max(steps)
