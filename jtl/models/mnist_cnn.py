"""DomainBed's MNIST_CNN (`domainbed/networks.py`): the featurizer of its MNIST data sets.

Four 3x3 convolutions, 64, 128 (stride 2), 128, 128 channels, each with padding 1 and followed
by ReLU then GroupNorm(8 groups), then the spatial mean: 128 features (28x28 in -> 14x14 after
the second conv). DomainBed's classifier on top is a linear layer: jtl's `head`.

Matches DomainBed layer for layer: torch's `padding=1` is explicit ((1, 1), (1, 1)) padding
here (flax's "SAME" would pad the stride-2 conv (0, 1)), GroupNorm's epsilon is torch's 1e-5,
and the convolutions start as torch's `Conv2d` does (weight and bias uniform in
+-1/sqrt(fan_in), fan_in = 9 * in_channels). The number of parameters is DomainBed's
(convolutions + GroupNorm scales and biases). The input channels are `input_shape[-1]`: 2 for
colored_mnist, 1 for rotated_mnist.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.models.base import MODELS, Backbone
from jtl.models.conv import Conv

WIDTHS = (64, 128, 128, 128)
STRIDES = (1, 2, 1, 1)
GROUPS = 8


def torch_uniform(fan_in: int) -> nnx.initializers.Initializer:
    """torch's default Conv2d/Linear initialisation of weight and bias: U(-b, b), b = 1/sqrt(
    fan_in) (kaiming_uniform with a = sqrt(5) for the weight gives the same bound)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32
             ) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class ConvReluNorm(nnx.Module):
    """conv (3x3, padding 1) -> ReLU -> GroupNorm(8): one of MNIST_CNN's four stages."""

    def __init__(self, cin: int, cout: int, stride: int, rngs: nnx.Rngs,
                 conv_impl: str = "auto") -> None:
        init = torch_uniform(9 * cin)
        self.conv = Conv(cin, cout, (3, 3), strides=stride, padding=((1, 1), (1, 1)),
                         kernel_init=init, bias_init=init, impl=conv_impl, rngs=rngs)
        self.norm = nnx.GroupNorm(cout, num_groups=GROUPS, epsilon=1e-5, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.norm(jax.nn.relu(self.conv(x)))


class MeanPool(nnx.Module):
    """The spatial mean, DomainBed's `x.mean(dim=(2, 3))`."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x.mean(axis=(1, 2))


@MODELS.register("mnist_cnn")
class MnistCnn(Backbone):
    """`blocks`: the four conv stages, then the mean pool (freeze_k / keep_blocks count them).
    `conv_impl`: `auto` is lax.conv on every backend, as ResNet's: at 64-128 channels im2col's
    9x patches ran slower on XLA:CPU (a batch-32 gradient step: 0.28 s im2col, 0.21 s lax.conv);
    `im2col` or `xla` pin one (jtl/models/conv.py)."""


    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs,
                 conv_impl: str = "auto") -> None:
        conv_impl = "xla" if conv_impl == "auto" else conv_impl
        cin = int(input_shape[-1])
        blocks: list[nnx.Module] = []
        for cout, stride in zip(WIDTHS, STRIDES, strict=True):
            blocks.append(ConvReluNorm(cin, cout, stride, rngs, conv_impl))
            cin = cout
        blocks.append(MeanPool())
        self.blocks = nnx.List(blocks)
        self.feature_dim = WIDTHS[-1]
