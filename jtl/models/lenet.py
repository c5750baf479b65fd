"""LeNet for 28x28 digits as in the DA literature (TLlib, CDAN): 20, 50 5x5 convs, 500 features."""

from __future__ import annotations

import jax
from flax import nnx

from jtl.models.base import MODELS, Backbone
from jtl.models.mlp import Dense


class ConvPool(nnx.Module):
    def __init__(self, cin: int, cout: int, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(cin, cout, (5, 5), padding="VALID", rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x)
        x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        return jax.nn.relu(x)


@MODELS.register("lenet")
class LeNet(Backbone):
    has_conv = True

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs, channels: int = 20,
                 features: int = 500) -> None:
        h, w, c = input_shape
        side_h, side_w = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        self.blocks = nnx.List([
            ConvPool(c, channels, rngs),
            ConvPool(channels, int(2.5 * channels), rngs),
            Dense(side_h * side_w * int(2.5 * channels), features, rngs),
        ])
        self.feature_dim = features
