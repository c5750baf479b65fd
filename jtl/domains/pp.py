"""Preprocessing inside the compiled step (big_vision's `pp`): stored fields -> model input.

A domain stores its splits as named fields in the dtype they came in (`image` (N,H,W,C) uint8
stays uint8, also on the device: 4x less memory than float32; `features` (N,D) float32;
`tokens` + `mask` (N,T) int32) at their own size. A `Pipeline` turns a batch of those fields
into what the model reads, as a pure jax function traced into the train chunk and the
evaluation: value scaling to [0, 1] (uint8 / 255), channel matching, bilinear resize to the
model's `input_shape`, the model's normalisation constants (`Backbone.normalize`, e.g.
ImageNet's mean/std) and, in training only, augmentation drawn from the step's PRNG key
(`augment: [flip, crop]`). So a 224x224 model reads a domain stored at its native size, and
every example is augmented afresh at every step, on the device.

The order of the image ops is the order the host applied before (scale, channels, resize,
clip), so a digits run reads the same pixels it read when domains were resized eagerly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtl.errors import JtlError

# Fields a model may read; `label` and `domain` are never model input.
INPUT_FIELDS = ("image", "features", "tokens")
# The fields each input field brings along (BERT-style text reads both).
FIELD_GROUPS = {"image": ("image",), "features": ("features",), "tokens": ("tokens", "mask")}
AUGMENTATIONS = ("flip", "crop")
U8_TO_UNIT = np.arange(256, dtype=np.float32) / np.float32(255.0)
# Random resized crop (Inception / torchvision RandomResizedCrop defaults).
CROP_SCALE, CROP_RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """How one domain's stored fields become the model's input (hashable: a jit static)."""

    field: str = "image"
    shape: tuple[int, ...] | None = None  # images: the model's (H, W, C)
    mean: tuple[float, ...] | None = None  # after [0, 1] scaling: (x - mean) / std
    std: tuple[float, ...] | None = None
    augment: tuple[str, ...] = ()

    def __call__(self, fields: Mapping[str, Any], key: jax.Array | None = None) -> Any:
        """The model input of a batch of `fields`; `key` given: training, augmented."""
        if self.field == "tokens":
            return {"tokens": jnp.asarray(fields["tokens"]), "mask": jnp.asarray(fields["mask"])}
        x = jnp.asarray(fields[self.field])
        if self.field == "features":
            return x.astype(jnp.float32)
        x = image_to_model(x, self.shape)
        if key is not None and self.augment:
            x = augment(x, key, self.augment)
        if self.mean is not None:
            x = (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)
        return x


def image_to_model(x: jax.Array, shape: Sequence[int] | None) -> jax.Array:
    """(B,h,w,c) uint8 or float32 in [0,1] -> (B, *shape) float32 in [0, 1]."""
    if x.dtype == jnp.uint8:
        # A 256-entry table, not a division: XLA rewrites x / 255 as x * (1/255), which is off
        # by one ulp for half the values; the table holds numpy's exact x / 255 (`to_unit`).
        x = jnp.asarray(U8_TO_UNIT)[x.astype(jnp.int32)]
    else:
        x = x.astype(jnp.float32)
    if shape is None:
        return x
    h, w, c = shape
    if x.shape[-1] != c:
        if x.shape[-1] == 1:
            x = jnp.repeat(x, c, axis=-1)
        elif c == 1:
            x = x.mean(axis=-1, keepdims=True)
        else:
            raise JtlError(f"cannot map {x.shape[-1]} image channels to the model's {c}")
    if x.shape[1:3] != (h, w):
        x = jax.image.resize(x, (x.shape[0], h, w, c), "bilinear")
    return jnp.clip(x, 0.0, 1.0)


def augment(x: jax.Array, key: jax.Array, ops: Sequence[str]) -> jax.Array:
    """Train-time augmentation of (B, H, W, C) images in [0, 1], per image, in `ops` order."""
    for i, op in enumerate(ops):
        k = jax.random.fold_in(key, i)
        if op == "flip":
            flip = jax.random.bernoulli(k, 0.5, (x.shape[0],))
            x = jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)
        elif op == "crop":
            x = jax.vmap(_random_resized_crop)(x, jax.random.split(k, x.shape[0]))
    return x


def _random_resized_crop(img: jax.Array, key: jax.Array) -> jax.Array:
    """torchvision's RandomResizedCrop (one draw, not its 10 retries): a box of U(scale) of
    the area and log-U(ratio) aspect, clipped to the image, resized back to the image size."""
    h, w, _ = img.shape
    k1, k2, k3, k4 = jax.random.split(key, 4)
    area = jax.random.uniform(k1, (), minval=CROP_SCALE[0], maxval=CROP_SCALE[1]) * h * w
    log_r = jax.random.uniform(k2, (), minval=np.log(CROP_RATIO[0]), maxval=np.log(CROP_RATIO[1]))
    ratio = jnp.exp(log_r)
    ch = jnp.clip(jnp.sqrt(area / ratio), 1.0, h)
    cw = jnp.clip(jnp.sqrt(area * ratio), 1.0, w)
    top = jax.random.uniform(k3, ()) * (h - ch)
    left = jax.random.uniform(k4, ()) * (w - cw)
    scale = jnp.array([h / ch, w / cw])
    translate = -jnp.array([top, left]) * scale
    return jax.image.scale_and_translate(img, img.shape, (0, 1), scale, translate, "linear")


def check_augment(ops: Any) -> tuple[str, ...]:
    """`augment: [flip, crop]` -> a tuple of known ops (one-line error otherwise)."""
    if not ops:
        return ()
    if isinstance(ops, str):
        ops = [ops]
    bad = [op for op in ops if op not in AUGMENTATIONS]
    if bad:
        raise JtlError(f"augment={list(ops)}: unknown {bad}; use any of {list(AUGMENTATIONS)}")
    return tuple(ops)


def host_inputs(pp: Pipeline, fields: Mapping[str, np.ndarray], batch_size: int = 1000) -> Any:
    """The model input of whole stored arrays, on the host, in batches (for measures and
    analysis that read a split at once)."""
    n = len(next(iter(fields.values())))
    run = _jitted(pp)
    parts = [jax.device_get(run({k: v[i:i + batch_size] for k, v in fields.items()}))
             for i in range(0, n, batch_size)]
    if not parts:
        parts = [jax.device_get(run({k: v[:0] for k, v in fields.items()}))]
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)


_JITTED: dict[Pipeline, Any] = {}


def _jitted(pp: Pipeline) -> Any:
    if pp not in _JITTED:
        _JITTED[pp] = jax.jit(lambda f: pp(f))
    return _JITTED[pp]
