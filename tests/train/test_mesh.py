"""Data parallelism on 4 fake CPU devices (issue 12): the same run as on one device, within a
stated tolerance, with no change to method code. XLA_FLAGS must be set before jax starts,
so the runs happen in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from jtl.errors import JtlError
from jtl.train.mesh import make_mesh
from tests.conftest import FAST, ROOT

# float32 training of 30 steps: per-device partial sums reorder the reductions, which moves
# parameters by a few ulps per step (measured on dann: max |diff| 7.7e-6, same accuracy);
# a real bug (a batch seen by one device only, a missing gradient all-reduce) moves them by
# the size of a gradient step, orders of magnitude more.
RTOL, ATOL = 1e-4, 5e-5

CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import jax, numpy as np
    from jtl.train import train_and_evaluate
    from jtl.train.checkpoint import manager
    from tests.conftest import compose_cfg
    assert len(jax.devices()) == 4, jax.devices()
    fast, out = json.loads(sys.argv[1]), sys.argv[2]
    res = {}
    for name, mesh in (("one", 1), ("four", "auto")):
        cfg = compose_cfg([*fast, f"trainer.mesh={mesh}"])
        s = train_and_evaluate(cfg, f"{out}/{name}")
        with manager(Path(out, name, "checkpoints")) as m:
            p = jax.tree_util.tree_leaves(m.restore(m.latest_step())["params"])
        res[name] = {"acc": s["target/test/accuracy"],
                     "params": [np.asarray(a).tolist() for a in p]}
    print(json.dumps(res))
""")


@pytest.mark.parametrize("method", ["dann", "coral"])
def test_four_devices_match_one(tmp_path, method):
    fast = [*FAST, f"method={method}", "trainer.steps=30", "trainer.batch_size=32",
            "trainer.eval_every=30", "trainer.checkpoint_every=30"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(fast), str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    import numpy as np

    one, four = out["one"], out["four"]
    assert len(one["params"]) == len(four["params"])
    worst = max(float(np.max(np.abs(np.subtract(a, b))))
                for a, b in zip(one["params"], four["params"], strict=True))
    for a, b in zip(one["params"], four["params"], strict=True):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)
    assert abs(one["acc"] - four["acc"]) <= 0.01, (one["acc"], four["acc"], worst)


def test_mesh_spec_is_checked():
    assert make_mesh(1) is None and make_mesh(None) is None
    with pytest.raises(JtlError, match=r"trainer\.mesh"):
        make_mesh(64)
