"""LeNet for 28x28 digits as in the DA literature (TLlib, CDAN): 20, 50 5x5 convs, 500 features."""

from __future__ import annotations

import jax
from flax import nnx

from jtl.models.base import MODELS, Backbone
from jtl.models.conv import Conv, max_pool
from jtl.models.mlp import Dense


class ConvPool(nnx.Module):
    def __init__(self, cin: int, cout: int, rngs: nnx.Rngs, conv_impl: str = "auto") -> None:
        self.conv = Conv(cin, cout, (5, 5), padding="VALID", impl=conv_impl, rngs=rngs)
        self.conv_impl = conv_impl

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x)
        x = max_pool(x, 2, self.conv_impl)
        return jax.nn.relu(x)


@MODELS.register("lenet")
class LeNet(Backbone):
    """`conv_impl`: `auto` (im2col on CPU and GPU), `xla` or `im2col`; with `xla`
    on CPU also set `trainer.steps_per_call=1` (lax.conv is slow inside a scan there).
    `norm: batch` puts BatchNorm between the last linear layer and its ReLU: with
    `features: 256` that layer is TLlib's bottleneck on its conv-only LeNet."""


    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs, channels: int = 20,
                 features: int = 500, conv_impl: str = "auto", norm: str = "none") -> None:
        h, w, c = input_shape
        side_h, side_w = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        self.blocks = nnx.List([
            ConvPool(c, channels, rngs, conv_impl),
            ConvPool(channels, int(2.5 * channels), rngs, conv_impl),
            Dense(side_h * side_w * int(2.5 * channels), features, rngs, norm),
        ])
        self.feature_dim = features
