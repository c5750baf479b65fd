"""Conv nets train in scan chunks on CPU now (im2col convs, jtl/models/conv.py): a chunk of n
steps under `lax.scan` must give the parameters of n per-step calls.

Tolerance: float32, |a - b| <= 1e-6 + 1e-5 |b| after 6 SGD steps (XLA may fuse the loop body
differently from the top-level step; observed differences are at the last bits).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from jtl.methods import build_method
from jtl.models import build_network
from jtl.train.backend import runs_conv
from jtl.train.optim import build_optimizer
from jtl.train.step import init_state, make_chunk, make_step
from jtl.train.trainer import steps_per_call

STEPS = 6


def _train(conv_impl: str, length: int) -> dict:
    method = build_method({"name": "source_only"})
    net = build_network({"name": "lenet", "input_shape": [28, 28, 1], "channels": 4,
                         "features": 16, "conv_impl": conv_impl}, 10, method, seed=0)
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    tx = build_optimizer({"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                          "weight_decay": 1e-3, "schedule": "dann"}, params, STEPS, ".*", None)
    rng = np.random.default_rng(0)
    data = {"source": {"x": rng.random((64, 28, 28, 1), dtype=np.float32),
                       "y": rng.integers(0, 10, 64).astype(np.int32)}}
    chunk = jax.jit(make_chunk(make_step(graphdef, method, tx, STEPS), 8, length, False))
    state = init_state(params, tx)
    key = jax.random.key(0)
    for _ in range(STEPS // length):
        state, metrics = chunk(state, data, key)
        assert metrics["loss"].shape == (length,)
    assert int(state["step"]) == STEPS
    return state["params"]


@pytest.mark.parametrize("conv_impl", ["im2col", "xla"])
def test_scan_chunked_conv_run_equals_per_step_run(conv_impl):
    per_step = _train(conv_impl, 1)
    scanned = _train(conv_impl, STEPS)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), per_step,
                                         _initial_params(conv_impl)))
    assert max(moved) > 1e-3  # the steps changed the parameters: the comparison has teeth
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 scanned, per_step)


def _initial_params(conv_impl: str) -> dict:
    net = build_network({"name": "lenet", "input_shape": [28, 28, 1], "channels": 4,
                         "features": 16, "conv_impl": conv_impl}, 10,
                        build_method({"name": "source_only"}), seed=0)
    return nnx.state(net, nnx.Param).to_pure_dict()


def _runs_conv(model: dict) -> bool:
    net = build_network(model, 10, build_method({"name": "source_only"}), seed=0)
    return runs_conv(net, model["input_shape"])


def test_auto_chunks_lenet_and_steps_lax_conv_backbones_on_cpu():
    """Whether a network runs lax.conv is read from its traced forward pass (not declared by
    the model): LeNet's im2col convolutions on CPU, ResNet's lax.conv, an MLP none."""
    on_cpu = jax.default_backend() == "cpu"
    lenet = _runs_conv({"name": "lenet", "input_shape": [28, 28, 1]})
    resnet = _runs_conv({"name": "resnet", "input_shape": [32, 32, 3], "blocks_per_stage": 1})
    mlp = _runs_conv({"name": "mlp", "input_shape": [28, 28, 1], "hidden": [8]})
    assert (resnet, mlp) == (True, False)
    assert lenet == (jax.default_backend() not in ("cpu", "gpu"))  # im2col on CPU and GPU
    assert _runs_conv({"name": "lenet", "input_shape": [28, 28, 1], "conv_impl": "xla"})
    cfg = {"steps_per_call": "auto", "eval_every": 100}
    assert steps_per_call(cfg, lenet) == 100
    assert steps_per_call(cfg, resnet) == (1 if on_cpu else 100)
    assert steps_per_call({"steps_per_call": "auto", "eval_every": 2000}, False) == 500
    assert steps_per_call({"steps_per_call": 7, "eval_every": 100}, resnet) == 7
