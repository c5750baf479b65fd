"""jtl's compiled training chunk on synthetic digits-shaped data, shared by the benchmarks.

The chunk is the trainer's own (`make_step` + `make_chunk`, jitted with the state donated) for
a method of the digits recipe (LeNet 20-50-500, SGD momentum 0.9 Nesterov, weight decay 1e-3,
lr 0.01 annealed as in `conf/optim/sgd_digits.yaml`). The data are random images with the
sizes of MNIST (60,000) and USPS (7,291) train splits: speed does not depend on pixel values,
and no data set needs to be present.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from jtl.methods import build_method
from jtl.models import build_network
from jtl.train.optim import build_optimizer
from jtl.train.step import init_state, make_chunk, make_step

DIGITS_OPTIM = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True,
                "weight_decay": 1e-3, "schedule": "dann"}
SIZES = {"source": 60_000, "target": 7_291}


def synthetic_digits(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """{"source"|"target": {"x": (N, 28, 28, 1) float32 in [0, 1), "y": (N,) int32}}."""
    rng = np.random.default_rng(seed)
    return {dom: {"x": rng.random((n, 28, 28, 1), dtype=np.float32),
                  "y": rng.integers(0, 10, n).astype(np.int32)} for dom, n in SIZES.items()}


class Chunk:
    """A jitted chunk of `length` steps with its state, data and key: `run(calls)` trains
    calls * length steps and blocks until they are done."""

    def __init__(self, method: str, data: Mapping[str, Any], *, conv_impl: str = "auto",
                 batch_size: int = 32, length: int = 1, total_steps: int = 2000,
                 seed: int = 0) -> None:
        m = build_method({"name": method})
        net = build_network({"name": "lenet", "input_shape": [28, 28, 1],
                             "conv_impl": conv_impl}, 10, m, seed)
        graphdef, params = nnx.split(net)
        params = params.to_pure_dict()
        tx = build_optimizer(DIGITS_OPTIM, params, total_steps, m.trainable, None)
        # Only the arrays the method reads, as the trainer's `train_arrays` hands them.
        arrays: dict = {}
        for name in m.uses:
            dom, field = name.split("/")
            arrays.setdefault(dom, {})[field] = data[dom][field]
        self.data = jax.device_put(arrays)
        self.length = length
        self.fn = jax.jit(make_chunk(make_step(graphdef, m, tx, total_steps), batch_size,
                                     length, False), donate_argnums=0)
        self.state = init_state(params, tx)
        self.key = jax.random.key(seed)

    def run(self, calls: int) -> Any:
        metrics = None
        for _ in range(calls):
            self.state, metrics = self.fn(self.state, self.data, self.key)
        jax.block_until_ready(self.state)
        return metrics

    def steps_per_second(self, steps: int) -> float:
        calls = max(steps // self.length, 1)
        t0 = time.perf_counter()
        self.run(calls)
        return calls * self.length / (time.perf_counter() - t0)
