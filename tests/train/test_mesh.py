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


@pytest.mark.parametrize("method", [pytest.param("dann", marks=pytest.mark.slow), "coral"])
def test_four_devices_match_one(tmp_path, method):
    # disc_norm=none: BatchNorm's division by the batch std grows float-order noise past
    # this tolerance in 30 steps; that BatchNorm sees the global batch is tested below.
    fast = [*FAST, f"method={method}", "trainer.steps=30", "trainer.batch_size=32",
            "trainer.eval_every=30", "trainer.checkpoint_every=30",
            *(["method.disc_norm=none"] if method == "dann" else [])]
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


BN_CHILD = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from jtl.models.base import batch_norm
    from jtl.train.mesh import make_mesh, batch_constraint
    g, st = nnx.split(batch_norm(8, nnx.Rngs(0)))
    st = st.to_pure_dict()
    x = jax.random.normal(jax.random.key(0), (32, 8)) + jnp.arange(8)
    x = x.at[:8].add(5.0)  # the first device's quarter differs from the rest

    def f(st, x, shard):
        x = shard(x) if shard else x
        m = nnx.merge(g, st)
        m.train()
        return m(x), nnx.state(m, nnx.BatchStat).to_pure_dict()

    (y1, s1), (y4, s4) = (jax.jit(lambda a, b: f(a, b, None))(st, x),
                          jax.jit(lambda a, b: f(a, b, batch_constraint(make_mesh("auto"))))(st, x))
    print(float(jnp.abs(y1 - y4).max()), float(jnp.abs(s1["mean"] - s4["mean"]).max()))
""")


def test_batch_norm_normalises_over_the_global_batch():
    """Split over 4 devices, BatchNorm's statistics are the whole batch's, not each
    device's quarter (which would differ by ~1.25 in the mean here)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    res = subprocess.run([sys.executable, "-c", BN_CHILD], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    dy, dmean = map(float, res.stdout.split())
    assert dy < 1e-5 and dmean < 1e-6
