"""A multilayer perceptron on flattened images or feature vectors: the fastest model."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import jax
import numpy as np
from flax import nnx

from jtl.errors import JtlError
from jtl.models.base import MODELS, Backbone, batch_norm, check_norm

# The hidden layers' nonlinearity. `sigmoid` is DANN's shallow network (Ganin et al. 2016,
# Sec. 5.1: one hidden layer of sigmoid units on the Amazon count vectors).
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jax.nn.tanh}


def check_activation(activation: str | None, key: str) -> str:
    """The activation's name; None is relu (the key's default, left out of run identities so
    runs made before the key existed keep their fingerprints)."""
    name = "relu" if activation is None else activation
    if name not in ACTIVATIONS:
        raise JtlError(f"{key}={activation!r}: use one of {sorted(ACTIVATIONS)} (null: relu)")
    return name


class Dense(nnx.Module):
    """Linear -> (BatchNorm) -> activation (ReLU by default) on flattened inputs; with
    norm="batch" it is TLlib's bottleneck (Linear, BatchNorm1d, ReLU)."""

    def __init__(self, din: int, dout: int, rngs: nnx.Rngs, norm: str = "none",
                 activation: str = "relu") -> None:
        check_norm(norm, "model.norm")
        self.linear = nnx.Linear(din, dout, rngs=rngs)
        self.norm = batch_norm(dout, rngs) if norm == "batch" else None
        self.activation = check_activation(activation, "model.activation")

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.linear(x.reshape(x.shape[0], -1))
        return ACTIVATIONS[self.activation](x if self.norm is None else self.norm(x))


@MODELS.register("mlp")
class MLP(Backbone):
    """Flattened images, or feature vectors (`features` domains: input_shape (D,))."""

    reads = ("image", "features")

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs,
                 hidden: Sequence[int] = (512, 256), norm: str = "none",
                 activation: str | None = None) -> None:
        act = check_activation(activation, "model.activation")
        dims = [int(np.prod(input_shape)), *hidden]
        self.blocks = nnx.List([Dense(a, b, rngs, norm, act)
                                for a, b in itertools.pairwise(dims)])
        self.feature_dim = dims[-1]
