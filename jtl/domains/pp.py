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

Every image op that runs inside a step lives here. Training ops (`TRAIN_OPS`, drawn from a
key, one key per image): `flip`, `crop` (random resized crop to the model's size) and
`distort` (SimCLR's digits views, `Distort`: crop + rotation + contrast + noise; SimCLR calls
it on its model input for its two views). Evaluation ops (`EVAL_OPS`, no key):
`center_crop`. `pp.resize` resizes images to resize x resize first, so the crops bring them
to the model's size: TLlib's ImageNet-backbone transforms (`conf/pp/tllib_imagenet.yaml`),
train = resize 256 + random resized crop 224 + flip, eval = resize 256 + centre crop 224.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.ndimage import map_coordinates

from jtl.errors import JtlError

# Fields a model may read; `label` and `domain` are never model input.
INPUT_FIELDS = ("image", "features", "tokens")
# The fields each input field brings along (BERT-style text reads both).
FIELD_GROUPS = {"image": ("image",), "features": ("features",), "tokens": ("tokens", "mask")}
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
    augment: tuple[str, ...] = ()  # training's ops (`TRAIN_OPS`), from the step's key
    resize: int | None = None  # images first to resize x resize (None: to the model's size)
    eval_ops: tuple[str, ...] = ()  # evaluation's ops (`EVAL_OPS`), run when there is no key

    def __call__(self, fields: Mapping[str, Any], key: jax.Array | None = None) -> Any:
        """The model input of a batch of `fields`; `key` given: training, augmented."""
        if self.field == "tokens":
            return {"tokens": jnp.asarray(fields["tokens"]), "mask": jnp.asarray(fields["mask"])}
        x = jnp.asarray(fields[self.field])
        if self.field == "features":
            return x.astype(jnp.float32)
        size = None if self.shape is None or self.resize is None else (
            self.resize, self.resize, self.shape[-1])
        x = image_to_model(x, size or self.shape)
        out_hw = None if self.shape is None else tuple(self.shape[:2])
        if key is not None and self.augment:
            x = augment(x, key, self.augment, out_hw)
        else:
            for op in self.eval_ops:
                x = EVAL_OPS[op](x, out_hw)
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


def augment(x: jax.Array, key: jax.Array, ops: Sequence[str],
            out_hw: tuple[int, int] | None = None) -> jax.Array:
    """Train-time augmentation of (B, H, W, C) images in [0, 1], per image, in `ops` order
    (op i draws from fold_in(key, i)); `crop` resizes to `out_hw` (None: the images' size)."""
    for i, op in enumerate(ops):
        x = TRAIN_OPS[op](x, jax.random.fold_in(key, i), out_hw or tuple(x.shape[1:3]))
    return x


def flip(x: jax.Array, key: jax.Array, out_hw: tuple[int, int] | None = None) -> jax.Array:
    """Each image mirrored left-right with probability 1/2 (RandomHorizontalFlip)."""
    mirror = jax.random.bernoulli(key, 0.5, (x.shape[0],))
    return jnp.where(mirror[:, None, None, None], x[:, :, ::-1], x)


def crop(x: jax.Array, key: jax.Array, out_hw: tuple[int, int] | None = None) -> jax.Array:
    """A random resized crop of each image (its own key), to `out_hw` (None: its size)."""
    hw = out_hw or tuple(x.shape[1:3])
    return jax.vmap(lambda img, k: _random_resized_crop(img, k, hw))(
        x, jax.random.split(key, x.shape[0]))


def center_crop(x: jax.Array, out_hw: tuple[int, int] | None) -> jax.Array:
    """The central out_hw window (torchvision's CenterCrop: offsets int(round(d / 2)))."""
    if out_hw is None:
        return x
    (h, w), (th, tw) = x.shape[1:3], out_hw
    if th > h or tw > w:
        raise JtlError(f"center_crop to {th}x{tw} of {h}x{w} images: set pp.resize >= "
                       f"{max(th, tw)}")
    top, left = round((h - th) / 2), round((w - tw) / 2)
    return x[:, top:top + th, left:left + tw]


def _random_resized_crop(img: jax.Array, key: jax.Array,
                         out_hw: tuple[int, int] | None = None) -> jax.Array:
    """torchvision's RandomResizedCrop (one draw, not its 10 retries): a box of U(scale) of
    the area and log-U(ratio) aspect, clipped to the image, resized to `out_hw` (None: the
    image's size)."""
    h, w, c = img.shape
    oh, ow = out_hw or (h, w)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    area = jax.random.uniform(k1, (), minval=CROP_SCALE[0], maxval=CROP_SCALE[1]) * h * w
    log_r = jax.random.uniform(k2, (), minval=np.log(CROP_RATIO[0]), maxval=np.log(CROP_RATIO[1]))
    ratio = jnp.exp(log_r)
    ch = jnp.clip(jnp.sqrt(area / ratio), 1.0, h)
    cw = jnp.clip(jnp.sqrt(area * ratio), 1.0, w)
    top = jax.random.uniform(k3, ()) * (h - ch)
    left = jax.random.uniform(k4, ()) * (w - cw)
    scale = jnp.array([oh / ch, ow / cw])
    translate = -jnp.array([top, left]) * scale
    return jax.image.scale_and_translate(img, (oh, ow, c), (0, 1), scale, translate, "linear")


@dataclasses.dataclass(frozen=True)
class Distort:
    """SimCLR's views of digits, one bilinear resampling per image from its own key.

    Chen et al. (2020) use random resized crop (area 0.08-1, aspect 3/4-4/3), colour jitter
    and blur on ImageNet; a 28x28 digit loses its identity under an 8% crop and has no colour,
    so the defaults are scaled for digits: area 0.5-1, rotation up to 15 degrees, contrast
    1 +/- 0.4 (their jitter strength 0.8 x 0.5), Gaussian noise of std 0.05. Values stay in
    [0, 1]. A fixed key always gives the same views, whatever the chunking or a resume.
    """

    min_scale: float = 0.5     # random resized crop: area fraction in [min_scale, 1]
    max_ratio: float = 4 / 3   # aspect ratio in [1/max_ratio, max_ratio] (log-uniform)
    max_degrees: float = 15.0  # rotation in [-max_degrees, max_degrees]
    contrast: float = 0.4      # contrast factor in [1 - contrast, 1 + contrast]
    noise_std: float = 0.05    # additive Gaussian noise

    def __call__(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """A batch (B, H, W, C) -> its augmented views, one key per image."""
        return jax.vmap(self.one)(jax.random.split(key, x.shape[0]), x)

    def one(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """One image (H, W, C): crop + rotation as one bilinear resampling, then contrast and
        noise, clipped to [0, 1]."""
        k_area, k_ratio, k_pos, k_rot, k_con, k_noise = jax.random.split(key, 6)
        h, w = x.shape[0], x.shape[1]
        area = jax.random.uniform(k_area, (), minval=self.min_scale, maxval=1.0)
        log_r = math.log(self.max_ratio)
        ratio = jnp.exp(jax.random.uniform(k_ratio, (), minval=-log_r, maxval=log_r))
        # Crop size as a fraction of each side (<= 1), and its centre's offset from the image's.
        fh = jnp.minimum(jnp.sqrt(area / ratio), 1.0)
        fw = jnp.minimum(jnp.sqrt(area * ratio), 1.0)
        pos = jax.random.uniform(k_pos, (2,), minval=-0.5, maxval=0.5)
        cy = (h - 1) / 2 + pos[0] * (1 - fh) * h
        cx = (w - 1) / 2 + pos[1] * (1 - fw) * w
        theta = jnp.deg2rad(jax.random.uniform(k_rot, (), minval=-self.max_degrees,
                                               maxval=self.max_degrees))
        # Output pixel (i, j) samples the input at centre + R(theta) @ (crop-scaled offset).
        u, v = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2,
                            indexing="ij")
        u, v = u * fh, v * fw
        rows = cy + jnp.cos(theta) * u - jnp.sin(theta) * v
        cols = cx + jnp.sin(theta) * u + jnp.cos(theta) * v
        out = jnp.stack([map_coordinates(x[..., c], [rows, cols], order=1, mode="constant",
                                         cval=0.0) for c in range(x.shape[-1])], axis=-1)
        factor = jax.random.uniform(k_con, (), minval=1 - self.contrast, maxval=1 + self.contrast)
        mean = out.mean()
        out = (out - mean) * factor + mean
        out = out + self.noise_std * jax.random.normal(k_noise, out.shape, out.dtype)
        return jnp.clip(out, 0.0, 1.0)


def distort(x: jax.Array, key: jax.Array, out_hw: tuple[int, int] | None = None) -> jax.Array:
    """`Distort` with its defaults (keeps the images' size)."""
    return Distort()(key, x)


# name -> op(images (B, H, W, C), key, out_hw) -> images; `augment: [...]` names them.
TRAIN_OPS: dict[str, Callable[..., jax.Array]] = {"flip": flip, "crop": crop,
                                                   "distort": distort}
AUGMENTATIONS = tuple(TRAIN_OPS)
# name -> op(images, out_hw) -> images, without a key; `pp.eval_ops: [...]` names them.
EVAL_OPS: dict[str, Callable[..., jax.Array]] = {"center_crop": center_crop}
# The ops that bring an image resized to `pp.resize` to the model's size.
TO_MODEL_SIZE = {"crop", "center_crop"}


def check_augment(ops: Any) -> tuple[str, ...]:
    """`augment: [flip, crop]` -> a tuple of known ops (one-line error otherwise)."""
    return _check_ops(ops, AUGMENTATIONS, "augment")


def _check_ops(ops: Any, known: Sequence[str], key: str) -> tuple[str, ...]:
    if not ops:
        return ()
    if isinstance(ops, str):
        ops = [ops]
    bad = [op for op in ops if op not in known]
    if bad:
        raise JtlError(f"{key}={list(ops)}: unknown {bad}; use any of {list(known)}")
    return tuple(ops)


def check_pp(pp: Mapping[str, Any] | None, augment: Sequence[str],
             shape: Sequence[int] | None = None) -> dict[str, Any]:
    """`pp: {resize, eval_ops}` -> Pipeline keywords. With `resize` the images reach the
    model's size only through a crop, so training needs `crop` in `augment` and evaluation
    `center_crop` in `eval_ops`; without it `center_crop` would crop nothing."""
    pp = dict(pp or {})
    unknown = sorted(set(pp) - {"resize", "eval_ops"})
    if unknown:
        raise JtlError(f"pp has no key(s) {unknown}; it takes ['eval_ops', 'resize']")
    resize, eval_ops = pp.get("resize"), _check_ops(pp.get("eval_ops"), tuple(EVAL_OPS),
                                                    "pp.eval_ops")
    if resize is None:
        if eval_ops:
            raise JtlError(f"pp.eval_ops={list(eval_ops)} crops images resized by pp.resize: "
                           "set pp.resize (e.g. 256), or leave pp.eval_ops empty")
        return {}
    if isinstance(resize, bool) or not isinstance(resize, int) or resize < 1:
        raise JtlError(f"pp.resize={resize!r}: an image side in pixels (e.g. 256), or null")
    if shape is not None and resize < max(shape[:2]):
        raise JtlError(f"pp.resize={resize} is below the model's {shape[0]}x{shape[1]}: the "
                       "crops take the model's size out of it; raise pp.resize")
    if not TO_MODEL_SIZE & set(augment) or not TO_MODEL_SIZE & set(eval_ops):
        raise JtlError(f"pp.resize={resize}: images reach the model's size through a crop; "
                       f"training needs augment=[crop, ...] (has {list(augment)}) and "
                       f"evaluation pp.eval_ops=[center_crop] (has {list(eval_ops)})")
    return {"resize": resize, "eval_ops": eval_ops}


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
