"""A per-step-loop run killed with SIGKILL (at a known step, through the trainer's
`JTL_FAULT` hook) and restarted with the same command ends exactly as an uninterrupted one:
same summary (but wall time), bit-identical final parameters, no duplicate metrics rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.conftest import FAST, ROOT
from tests.train.test_trainer import final_params

ARGS = [*FAST, "trainer.steps=300", "trainer.eval_every=100", "trainer.checkpoint_every=50",
        "trainer.log_every=50", "trainer.steps_per_call=1", "seed=7"]


def run(run_dir, **env):
    return subprocess.run([sys.executable, "-m", "jtl.train", *ARGS, f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu", **env},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # 13 s: tests/reliability/test_interrupts.py kills and resumes too
def test_sigkill_and_restart_match_uninterrupted_run(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert run(full).returncode == 0
    assert run(killed, JTL_FAULT="sigkill@170").returncode == -9
    assert not (killed / "summary.json").exists()
    assert run(killed).returncode == 0

    a = json.loads((full / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    a.pop("wall_time_s"), b.pop("wall_time_s")
    assert a == b and a["step"] == 300
    for x, y in zip(jax.tree_util.tree_leaves(final_params(full)),
                    jax.tree_util.tree_leaves(final_params(killed)), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    steps = [json.loads(r)["step"] for r in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "metrics.jsonl holds duplicate rows after the resume"
