"""A multilayer perceptron on flattened images or feature vectors: the fastest model."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

from jtl.models.base import MODELS, Backbone, batch_norm, check_norm


class Dense(nnx.Module):
    """Linear -> (BatchNorm) -> ReLU on flattened inputs; with norm="batch" it is TLlib's
    bottleneck (Linear, BatchNorm1d, ReLU)."""

    def __init__(self, din: int, dout: int, rngs: nnx.Rngs, norm: str = "none") -> None:
        check_norm(norm, "model.norm")
        self.linear = nnx.Linear(din, dout, rngs=rngs)
        self.norm = batch_norm(dout, rngs) if norm == "batch" else None

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.linear(x.reshape(x.shape[0], -1))
        return jax.nn.relu(x if self.norm is None else self.norm(x))


@MODELS.register("mlp")
class MLP(Backbone):
    """Flattened images, or feature vectors (`features` domains: input_shape (D,))."""

    reads = ("image", "features")

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs,
                 hidden: Sequence[int] = (512, 256), norm: str = "none") -> None:
        dims = [int(np.prod(input_shape)), *hidden]
        self.blocks = nnx.List([Dense(a, b, rngs, norm) for a, b in itertools.pairwise(dims)])
        self.feature_dim = dims[-1]
