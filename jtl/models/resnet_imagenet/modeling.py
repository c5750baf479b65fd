"""ImageNet ResNets (He et al. 2016; torchvision's "v1.5") as jtl backbones.

    stem        7x7/2 conv 3->64 (pad 3), BN, ReLU, 3x3/2 max pool (pad 1)      blocks[0]
    ResNet-18   BasicBlock x (2, 2, 2, 2): 3x3 conv (stride on a stage's first
                block), BN, ReLU, 3x3 conv, BN; + shortcut; ReLU                 blocks[1..8]
    ResNet-50   Bottleneck x (3, 4, 6, 3): 1x1 conv, BN, ReLU, 3x3 conv (the
                stride is here: v1.5), BN, ReLU, 1x1 conv (x4 width), BN;
                + shortcut; ReLU                                                 blocks[1..16]
    shortcut    identity, or `downsample` = 1x1 conv (stride) + BN where the shape changes
    pool        global average over H, W -> (B, 512) / (B, 2048)                 (in __call__)

Every residual block is one entry of `blocks`, so `transfer.freeze_k`, `keep_blocks` and
`layer_decay` address them by index (`backbone/blocks/<i>/...`); the parameter names inside
a block are torchvision's (`conv1`, `bn1`, ..., `downsample/conv|bn`), which keeps the
converter's table (`params.py`) a renaming. Padding is PyTorch's symmetric padding; BatchNorm
has PyTorch's eps 1e-5 and momentum 0.1 (`jtl.models.base.batch_norm`). One difference in
training mode: flax updates the running variance with the biased batch variance, PyTorch
with the unbiased one (a factor n / (n - 1), n = B*H*W per channel: 1.0006 at 224 x 224,
batch 32, in the last stage); the normalisation itself, and evaluation, are the same.

The ImageNet classifier (fc 512/2048 -> 1000) is not part of the backbone: jtl's `head` is
new per task; `ImageNetClassifier` puts the published `fc` on top for the parity test.

Inputs are (B, H, W, 3) float images normalised with the ImageNet mean/std on the [0, 1]
scale (the model's `normalize`, applied by the domain's pipeline inside the step).

Not `jtl/models/resnet.py`: that is a small CIFAR ResNet (3x3 stem, 3 stages of 16/32/64
channels, GroupNorm so a step has no mutable state) trained from scratch; this is the
ImageNet architecture with BatchNorm, made to take published checkpoints.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx
from flax.linen import max_pool

from jtl.models.base import MODELS, Backbone, batch_norm

# torchvision's ImageNet normalisation on the [0, 1] scale.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (blocks per stage, bottleneck?). Published parameter counts with the 1000-way fc:
# 11,689,512 / 21,797,672 / 25,557,032 / 44,549,160 / 60,192,808 (torchvision).
SIZES = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False), 50: ((3, 4, 6, 3), True),
         101: ((3, 4, 23, 3), True), 152: ((3, 8, 36, 3), True)}
STEM, WIDTHS, EXPANSION = 64, (64, 128, 256, 512), 4

# torchvision's conv init, kaiming_normal_(fan_out, relu) (random init only).
_CONV_INIT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(cin: int, cout: int, k: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
    """A bias-free conv with PyTorch's symmetric padding k // 2."""
    return nnx.Conv(cin, cout, (k, k), strides=stride, padding=[(k // 2, k // 2)] * 2,
                    use_bias=False, kernel_init=_CONV_INIT, rngs=rngs)


class Stem(nnx.Module):
    def __init__(self, cin: int, rngs: nnx.Rngs) -> None:
        self.conv = _conv(cin, STEM, 7, 2, rngs)
        self.bn = batch_norm(STEM, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.bn(self.conv(x)))
        return max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))  # pads with -inf


class Downsample(nnx.Module):
    """The projection shortcut: 1x1 conv (stride) + BN (torchvision's `downsample.0/1`)."""

    def __init__(self, cin: int, cout: int, stride: int, rngs: nnx.Rngs) -> None:
        self.conv = _conv(cin, cout, 1, stride, rngs)
        self.bn = batch_norm(cout, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.bn(self.conv(x))


class BasicBlock(nnx.Module):
    def __init__(self, cin: int, width: int, stride: int, rngs: nnx.Rngs) -> None:
        self.conv1 = _conv(cin, width, 3, stride, rngs)
        self.bn1 = batch_norm(width, rngs)
        self.conv2 = _conv(width, width, 3, 1, rngs)
        self.bn2 = batch_norm(width, rngs)
        self.downsample = (Downsample(cin, width, stride, rngs)
                           if stride != 1 or cin != width else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return jax.nn.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nnx.Module):
    def __init__(self, cin: int, width: int, stride: int, rngs: nnx.Rngs) -> None:
        cout = width * EXPANSION
        self.conv1 = _conv(cin, width, 1, 1, rngs)
        self.bn1 = batch_norm(width, rngs)
        self.conv2 = _conv(width, width, 3, stride, rngs)
        self.bn2 = batch_norm(width, rngs)
        self.conv3 = _conv(width, cout, 1, 1, rngs)
        self.bn3 = batch_norm(cout, rngs)
        self.downsample = (Downsample(cin, cout, stride, rngs)
                           if stride != 1 or cin != cout else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = jax.nn.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return jax.nn.relu(y + (x if self.downsample is None else self.downsample(x)))


def block_index(stage: int, index: int, depths: tuple[int, ...]) -> int:
    """Where torchvision's `layer{stage}.{index}` (stage 1-based) sits in `blocks`."""
    return 1 + sum(depths[:stage - 1]) + index


class ImageNetResNet(Backbone):
    """(B, H, W, 3) normalised images -> pooled features (B, 512 or 2048); `blocks` = [stem,
    residual block x sum(depths)]. A backbone cut by `keep_blocks` also pools (its features
    are the channels of the last kept block)."""

    normalize = (IMAGENET_MEAN, IMAGENET_STD)

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs,
                 depths: tuple[int, ...] = (3, 4, 6, 3), bottleneck: bool = True) -> None:
        block = Bottleneck if bottleneck else BasicBlock
        expansion = EXPANSION if bottleneck else 1
        blocks: list[nnx.Module] = [Stem(input_shape[-1], rngs)]
        cin = STEM
        for stage, (n, width) in enumerate(zip(depths, WIDTHS, strict=True)):
            for i in range(n):
                blocks.append(block(cin, width, 2 if stage > 0 and i == 0 else 1, rngs))
                cin = width * expansion
        self.blocks = nnx.List(blocks)
        self.feature_dim = cin

    def __call__(self, x: jax.Array) -> jax.Array:
        for block in self.blocks:
            x = block(x)
        return x.mean(axis=(1, 2))


class _Registered(ImageNetResNet):
    depth: ClassVar[int]

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs,
                 weights: str | None = None) -> None:
        """`weights` (`model.weights`) is the checkpoint the run's initial parameters are
        loaded from (`jtl.models.pretrained`, after this random init); the module ignores it."""
        del weights
        depths, bottleneck = SIZES[self.depth]
        super().__init__(input_shape, rngs, depths, bottleneck)


@MODELS.register("resnet18")
class ResNet18(_Registered):
    """ResNet-18: 9 blocks (stem, 8 basic blocks) -> 512 features; 11.7M parameters with
    the ImageNet fc."""

    depth = 18


@MODELS.register("resnet50")
class ResNet50(_Registered):
    """ResNet-50: 17 blocks (stem, 16 bottlenecks) -> 2048 features; 25.6M parameters with
    the ImageNet fc."""

    depth = 50


class ImageNetClassifier(nnx.Module):
    """A ResNet backbone with the published 1000-class `fc` (for the parity test)."""

    def __init__(self, backbone: ImageNetResNet, rngs: nnx.Rngs,
                 num_classes: int = 1000) -> None:
        self.backbone = backbone
        self.fc = nnx.Linear(backbone.feature_dim, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc(self.backbone(x))


def normalize(images: jax.Array) -> jax.Array:
    """[0, 1] RGB images (channels last) -> the model's input (ImageNet mean/std)."""
    mean, std = (jnp.asarray(c, jnp.float32) for c in ImageNetResNet.normalize)
    return (jnp.asarray(images, jnp.float32) - mean) / std
