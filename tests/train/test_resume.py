"""A run killed with SIGKILL and restarted with the same command ends exactly as an
uninterrupted one: same summary (but wall time) and bit-identical final parameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from tests.conftest import FAST, ROOT
from tests.train.test_trainer import final_params

ARGS = [*FAST, "trainer.steps=3000", "trainer.eval_every=500", "trainer.checkpoint_every=250",
        "trainer.log_every=250", "trainer.steps_per_call=1", "seed=7"]


def command(run_dir):
    return [sys.executable, "-m", "jtl.train", *ARGS, f"hydra.run.dir={run_dir}"]


def test_sigkill_and_restart_match_uninterrupted_run(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(command(full), cwd=ROOT, env=env, check=True, capture_output=True)

    proc = subprocess.Popen(command(killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "1000").is_dir():
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "summary.json").exists()
    subprocess.run(command(killed), cwd=ROOT, env=env, check=True, capture_output=True)

    a = json.loads((full / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    a.pop("wall_time_s"), b.pop("wall_time_s")
    assert a == b and a["step"] == 3000
    for x, y in zip(jax.tree_util.tree_leaves(final_params(full)),
                    jax.tree_util.tree_leaves(final_params(killed)), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    steps = [json.loads(r)["step"] for r in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "metrics.jsonl holds duplicate rows after the resume"
