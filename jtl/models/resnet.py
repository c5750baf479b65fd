"""A small CIFAR-style ResNet (3 stages, 16/32/64 widths times `width`).

GroupNorm instead of BatchNorm: no batch statistics means no mutable state, so a step stays a
pure function of (params, batch) that `vmap` can batch over seeds, and source and target
batches cannot leak into each other's normalisation (the BiT choice).

Not the ImageNet ResNet: `resnet18` / `resnet50` (jtl/models/resnet_imagenet/) are
torchvision's architecture (7x7 stem + max pool, 4 stages of 64-512 channels, BatchNorm,
bottlenecks for 50) and load published checkpoints; this one has a 3x3 stem, 3 stages, no
pretrained weights, and is trained from scratch on small images.
"""

from __future__ import annotations

import jax
from flax import nnx

from jtl.models.base import MODELS, Backbone
from jtl.models.conv import Conv


def _norm(ch: int, rngs: nnx.Rngs) -> nnx.GroupNorm:
    return nnx.GroupNorm(ch, num_groups=min(8, ch), rngs=rngs)


class Stem(nnx.Module):
    def __init__(self, cin: int, cout: int, rngs: nnx.Rngs, conv_impl: str = "auto") -> None:
        self.conv = Conv(cin, cout, (3, 3), use_bias=False, impl=conv_impl, rngs=rngs)
        self.norm = _norm(cout, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(self.norm(self.conv(x)))


class ResBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, rngs: nnx.Rngs,
                 conv_impl: str = "auto") -> None:
        self.conv1 = Conv(cin, cout, (3, 3), strides=stride, use_bias=False, impl=conv_impl,
                          rngs=rngs)
        self.norm1 = _norm(cout, rngs)
        self.conv2 = Conv(cout, cout, (3, 3), use_bias=False, impl=conv_impl, rngs=rngs)
        self.norm2 = _norm(cout, rngs)
        self.proj = (Conv(cin, cout, (1, 1), strides=stride, use_bias=False, impl=conv_impl,
                          rngs=rngs)
                     if stride != 1 or cin != cout else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.nn.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        skip = x if self.proj is None else self.proj(x)
        return jax.nn.relu(y + skip)


class Pool(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x.mean(axis=(1, 2))


@MODELS.register("resnet")
class ResNet(Backbone):

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs, blocks_per_stage: int = 3,
                 width: int = 1, conv_impl: str = "auto") -> None:
        # `auto` is lax.conv on every backend here: at these widths im2col's 9x patches run
        # slower on XLA:CPU than lax.conv per step (benchmarks/README.md).
        conv_impl = "xla" if conv_impl == "auto" else conv_impl
        widths = [16 * width, 32 * width, 64 * width]
        blocks: list[nnx.Module] = [Stem(input_shape[-1], widths[0], rngs, conv_impl)]
        cin = widths[0]
        for stage, cout in enumerate(widths):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(ResBlock(cin, cout, stride, rngs, conv_impl))
                cin = cout
        blocks.append(Pool())
        self.blocks = nnx.List(blocks)
        self.feature_dim = widths[-1]
