"""Autoencoder: the reconstruction baseline of self-supervised pretraining.

A decoder (`dec/`, an MLP ending in a sigmoid, since pixels lie in [0, 1]) maps the
backbone's features back to the image:

    loss = mean (dec(f(x)) - x)^2

It reads `source/x` only, so no label reaches it. `head` stays untrained (`summary.json` says
so); the backbone is what transfers (evaluate it with `measure=[cluster]`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.errors import JtlError
from jtl.methods.base import METHODS, Method


class Decoder(nnx.Module):
    """Features -> flat pixels in [0, 1]: Linear, ReLU, Linear, sigmoid."""

    def __init__(self, din: int, hidden: int, pixels: int, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(din, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, pixels, rngs=rngs)

    def __call__(self, f: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(self.out(jax.nn.relu(self.hidden(f))))


@METHODS.register("autoencoder")
@dataclasses.dataclass(frozen=True)
class Autoencoder(Method):
    pixels: int = 784  # H * W * C of the model's input (28 x 28 x 1)
    dec_hidden: int = 512
    uses = frozenset({"source/x"})
    trainable = "(backbone|neck|dec)/.*"

    def modules(self, feature_dim, num_classes, rngs):
        return {"dec": Decoder(feature_dim, self.dec_hidden, self.pixels, rngs)}

    def loss(self, model, batch, key, progress):
        x = batch["source"]["x"]
        if math.prod(x.shape[1:]) != self.pixels:  # shapes are static: checked while tracing
            raise JtlError(f"autoencoder: images have {math.prod(x.shape[1:])} pixel values "
                           f"{tuple(x.shape[1:])}, the decoder outputs {self.pixels}; set "
                           f"method.pixels={math.prod(x.shape[1:])}")
        mse = jnp.mean((model.dec(model.features(x)) - x.reshape(x.shape[0], -1)) ** 2)
        return mse, {"mse": mse}
