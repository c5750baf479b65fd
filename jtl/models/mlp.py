"""A multilayer perceptron on flattened images: the fastest model, for quick studies."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

from jtl.models.base import MODELS, Backbone


class Dense(nnx.Module):
    def __init__(self, din: int, dout: int, rngs: nnx.Rngs) -> None:
        self.linear = nnx.Linear(din, dout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(self.linear(x.reshape(x.shape[0], -1)))


@MODELS.register("mlp")
class MLP(Backbone):
    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs,
                 hidden: Sequence[int] = (512, 256)) -> None:
        dims = [int(np.prod(input_shape)), *hidden]
        self.blocks = nnx.List([Dense(a, b, rngs) for a, b in itertools.pairwise(dims)])
        self.feature_dim = dims[-1]
