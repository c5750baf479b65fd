"""EfficientNet-Lite (Tan & Le 2019; Google's Lite edge variant) as a jtl backbone.

Lite is EfficientNet without squeeze-excitation and with ReLU6 instead of Swish:

    stem    3x3/2 conv 3->32, BN, ReLU6                               blocks[0]
    MBConv  [1x1 expand conv, BN, ReLU6] (absent when expand is 1)    blocks[1..16] (Lite0)
            kxk depthwise conv (stride on a group's first block), BN, ReLU6
            1x1 project conv, BN (no activation); + input when stride 1 and in == out
    head    1x1 conv 320->1280, BN, ReLU6                             blocks[-1]
    pool    global average over H, W -> (B, 1280)                     (in __call__)

Padding is TensorFlow "SAME" (asymmetric for stride 2: 3x3 pads (0, 1) at 224), which is what
the published weights were trained with; PyTorch-style symmetric padding changes the logits by
up to 2.6. BatchNorm has eps 1e-3 and TF's running-average momentum 0.99 (PyTorch's 0.01).

The ImageNet classifier (dropout 0.2, fc 1280->1000) is not part of the backbone: jtl's `head`
is new per task. `ImageNetClassifier` puts the published `fc` on top for the parity test.

Inputs are (B, H, W, 3) float images already normalised as the weights expect:
`(pixel - MEAN_RGB) / STDDEV_RGB` on the 0-255 scale (`normalize`); the module does not do it.
Training-only drop-connect (stochastic depth) is not implemented: evaluation is exact, and a
fine-tuning run trains without it.

Depthwise convolutions: on the CPU backend they run as a sum over the k*k kernel taps with a
hand-written backward pass (`depthwise.py`), because XLA:CPU's grouped convolution
(`feature_group_count=C`) is 10-100x slower per layer; the 1x1 convs are matmuls there. On
GPU/TPU they are XLA's conv. Either way they are nnx.Conv modules with nnx.Conv's `kernel`
((k, k, 1, C) depthwise): checkpoints and the converter are unaffected (benchmarks/README.md,
`pretrained_step.py`).

Sizes: Lite0-4 differ only by width and depth multipliers (`LITE_SIZES`); Lite keeps the stem
(32) and head (1280) widths and the first and last groups' repeats fixed. Only Lite0 is
registered (`efficientnet_lite0`), the size whose weights are at hand.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jtl.models.base import MODELS, Backbone
from jtl.models.efficientnet_lite.depthwise import (
    depthwise_conv_general_dilated,
    pointwise_conv_general_dilated,
)

# Google's Lite builder: "Edge models use inception-style MEAN and STDDEV" (0-255 scale).
MEAN_RGB = (127.0, 127.0, 127.0)
STDDEV_RGB = (128.0, 128.0, 128.0)

# (width multiplier, depth multiplier, input resolution) of Google's efficientnet_lite_builder.
LITE_SIZES = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260),
              3: (1.2, 1.4, 280), 4: (1.4, 1.8, 300)}

# The B0/Lite0 groups: (repeats, kernel, stride, expand, in, out).
GROUPS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320))
STEM, HEAD = 32, 1280
BN_MOMENTUM, BN_EPS = 0.99, 1e-3


def normalize(pixels: jax.Array | np.ndarray) -> jax.Array:
    """0-255 RGB pixels (any dtype, channels last) -> the model's input,
    (x - MEAN_RGB) / STDDEV_RGB in float32."""
    x = jnp.asarray(pixels, jnp.float32)
    return (x - jnp.asarray(MEAN_RGB, jnp.float32)) / jnp.asarray(STDDEV_RGB, jnp.float32)


class BlockSpec(NamedTuple):
    kernel: int
    stride: int
    expand: int
    cin: int
    cout: int


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: `filters * width` to a multiple of `divisor`, never
    below 90% of it."""
    if width == 1.0:
        return filters
    f = filters * width
    new = max(divisor, int(f + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * f else new)


def block_specs(width: float = 1.0, depth: float = 1.0) -> list[BlockSpec]:
    """The MBConv blocks of a Lite size; the first and last groups keep their repeats."""
    specs = []
    for g, (repeats, k, stride, expand, cin, cout) in enumerate(GROUPS):
        if 0 < g < len(GROUPS) - 1:
            repeats = math.ceil(depth * repeats)
        cin, cout = round_filters(cin, width), round_filters(cout, width)
        for r in range(repeats):
            specs.append(BlockSpec(k, stride if r == 0 else 1, expand, cin if r == 0 else cout,
                                   cout))
    return specs


def _bn(dim: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """TF's BatchNorm (momentum 0.99, eps 1e-3), built in evaluation mode like
    `jtl.models.base.batch_norm`: the training step switches it to batch statistics."""
    return nnx.BatchNorm(dim, momentum=BN_MOMENTUM, epsilon=BN_EPS, use_running_average=True,
                         rngs=rngs)


# TF EfficientNet's conv initialiser (random init only; pretrained weights replace it).
_CONV_INIT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


class ConvBN(nnx.Module):
    """conv (no bias, TF "SAME") -> BatchNorm -> optional ReLU6; `groups=cin` is depthwise,
    whose convolution on the CPU is the tap sum of `depthwise.py` (XLA:CPU's grouped conv is
    10-100x slower), and a 1x1 conv there is a matmul; an nnx.Conv all the same (same
    parameters)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: bool,
                 rngs: nnx.Rngs, groups: int = 1) -> None:
        conv_fn = (depthwise_conv_general_dilated if groups > 1 else
                   pointwise_conv_general_dilated if kernel == 1 and stride == 1 else
                   jax.lax.conv_general_dilated)
        self.conv = nnx.Conv(cin, cout, (kernel, kernel), strides=stride, padding="SAME",
                             feature_group_count=groups, use_bias=False, kernel_init=_CONV_INIT,
                             conv_general_dilated=conv_fn, rngs=rngs)
        self.bn = _bn(cout, rngs)
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x))
        return jax.nn.relu6(x) if self.act else x


class MBConv(nnx.Module):
    """Inverted residual block without squeeze-excitation."""

    def __init__(self, spec: BlockSpec, rngs: nnx.Rngs) -> None:
        mid = spec.cin * spec.expand
        self.expand = (ConvBN(spec.cin, mid, 1, 1, True, rngs) if spec.expand != 1 else None)
        self.depthwise = ConvBN(mid, mid, spec.kernel, spec.stride, True, rngs, groups=mid)
        self.project = ConvBN(mid, spec.cout, 1, 1, False, rngs)
        self.residual = spec.stride == 1 and spec.cin == spec.cout

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class EfficientNetLite(Backbone):
    """(B, H, W, 3) normalised images -> pooled features (B, 1280); `blocks` = [stem, MBConv
    x N, head]. A backbone cut by `keep_blocks` also pools (its features are the channels of
    the last kept block), not the flattened map of Backbone's default."""

    # `normalize` on the [0, 1] scale the domain pipeline works in (jtl.domains.pp).
    normalize = (tuple(m / 255.0 for m in MEAN_RGB), tuple(s / 255.0 for s in STDDEV_RGB))

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs, width: float = 1.0,
                 depth: float = 1.0) -> None:
        specs = block_specs(width, depth)
        blocks: list[nnx.Module] = [ConvBN(input_shape[-1], STEM, 3, 2, True, rngs)]
        blocks += [MBConv(s, rngs) for s in specs]
        blocks.append(ConvBN(specs[-1].cout, HEAD, 1, 1, True, rngs))
        self.blocks = nnx.List(blocks)
        self.feature_dim = HEAD

    def __call__(self, x: jax.Array) -> jax.Array:
        for block in self.blocks:
            x = block(x)
        return x.mean(axis=(1, 2)) if x.ndim == 4 else x


@MODELS.register("efficientnet_lite0")
class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 (4.65M parameters with the ImageNet fc; 224 x 224 inputs);
    `params.load_pretrained` fills it from the published weights."""

    size: ClassVar[int] = 0

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs,
                 weights: str | None = None) -> None:
        """`weights` (`model.weights`) is the checkpoint the run's initial parameters are
        loaded from (`jtl.models.pretrained`, after this random init); the module ignores it."""
        del weights
        width, depth, _ = LITE_SIZES[self.size]
        super().__init__(input_shape, rngs, width, depth)


class ImageNetClassifier(nnx.Module):
    """A Lite backbone with the published 1000-class `fc` (evaluation only: dropout 0.2 before
    `fc` is a training-time layer)."""

    def __init__(self, backbone: EfficientNetLite, rngs: nnx.Rngs,
                 num_classes: int = 1000) -> None:
        self.backbone = backbone
        self.fc = nnx.Linear(backbone.feature_dim, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc(self.backbone(x))
