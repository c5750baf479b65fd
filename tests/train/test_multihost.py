"""One run over 2 processes (issue 12): `jax.distributed` from the environment, gloo
collectives on CPU, the batch split over both processes' devices, process 0 writing the run
dir. Same result as one process within a stated tolerance."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import jax
import numpy as np

from jtl import rundir
from jtl.train import train_and_evaluate
from jtl.train.checkpoint import manager
from tests.conftest import FAST, ROOT

# As on 4 local devices (test_mesh.py): only the order of float reductions differs.
ATOL = 5e-5
# disc_norm=none for the reason given in test_mesh.py.
ARGS = [*FAST, "method=dann", "trainer.steps=30", "trainer.batch_size=32",
        "trainer.eval_every=30", "trainer.checkpoint_every=30", "trainer.log_every=10",
        "method.disc_norm=none"]
CHILD = """
import json, sys
from jtl.train import train_and_evaluate
from tests.conftest import compose_cfg
s = train_and_evaluate(compose_cfg(json.loads(sys.argv[1])), sys.argv[2])
print("RESULT", json.dumps(s["target/test/accuracy"]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def final_params(run_dir, like=None):
    """The last checkpoint's parameters; `like` (a state) restores a checkpoint written by
    several processes into this one process's topology, as load_run and init_from do."""
    from jtl.train.checkpoint import ocp

    with manager(run_dir / rundir.CHECKPOINTS) as m:
        args = None if like is None else ocp.args.StandardRestore(like)
        state = m.restore(m.latest_step(), args=args)
    return state, [np.asarray(a) for a in jax.tree_util.tree_leaves(state["params"])]


def test_two_processes_train_one_run_like_one_process(tmp_path, fast_cfg):
    import json

    port = free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(ARGS), str(tmp_path / "two")], cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "JTL_COORDINATOR": f"localhost:{port}",
             "JTL_NUM_PROCESSES": "2", "JTL_PROCESS_ID": str(i)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    accs = [json.loads(out.split("RESULT", 1)[1]) for out, _ in outs]
    assert accs[0] == accs[1]  # both processes computed the same evaluation

    one = train_and_evaluate(fast_cfg(*ARGS[len(FAST):]), tmp_path / "one")
    two = rundir.read_summary(tmp_path / "two")
    assert two["status"] == "completed" and two["fingerprint"] == one["fingerprint"]
    assert abs(two["target/test/accuracy"] - one["target/test/accuracy"]) < 0.01
    state, ref = final_params(tmp_path / "one")
    for a, b in zip(final_params(tmp_path / "two", like=state)[1], ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)
    # Process 0 alone wrote the run dir: one row per log step, once.
    assert [r["step"] for r in rundir.read_metrics(tmp_path / "two")] == [10, 20, 30]
