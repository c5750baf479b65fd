"""ImageNet-C style corruptions (Hendrycks & Dietterich 2019) as array functions: numpy, scipy
and Pillow only (ImageNet-C's own code uses skimage, OpenCV and ImageMagick).

Each function maps uint8 images `x` (N, H, W, C) in [0, 255] (C = 3; 1 where the corruption
has no colour step) and a numpy Generator to uint8 images of the same shape: the corrupted
float image is clipped to [0, 1] and rounded to 8 bits, as ImageNet-C saves its images
(np.uint8 of the [0, 255] array, truncated; here rounded). The severity tables (1-5) are
hendrycks/robustness `ImageNet-C/create_c/make_imagenet_c.py`'s, made for 224x224 images; on
other sizes every length (blur sigmas and radii, the motion-blur radius) scales with
min(H, W) / 224, and the fog layer is a plasma fractal of the next power of two >= the side,
cut to the image. Random draws are per pixel for the noises and per image elsewhere, all from
the one Generator, so a seed names the corrupted set (the same distribution as ImageNet-C,
not its published images).

Written out where ImageNet-C calls a library:
- `impulse_noise`: skimage's `random_noise(mode='s&p')` (each value flipped with probability
  `amount`, to 0 or 1 with equal odds);
- `gaussian_blur`: skimage's `gaussian` (truncate 4, edges repeated), channels apart;
- `defocus_blur`: ImageNet-C's disk kernel, antialiased by OpenCV's 3x3 (5x5 above radius 8)
  Gaussian, applied as `cv2.filter2D` (reflect-101 borders), here by FFT;
- `motion_blur`: ImageMagick's MotionBlurImage kernel (one-sided Gaussian taps at rounded
  offsets, edges repeated; as `jtl.domains.corruptions.motion_blur`), one angle per image;
- `brightness`, `saturate`: skimage's HSV round trip in closed form (with hue and one of S, V
  fixed, RGB is affine in the other);
- `jpeg_compression`, `pixelate`: Pillow, as ImageNet-C.
Not here: glass_blur (a per-pixel sequential swap), snow, frost (ImageNet-C's frost photos),
elastic_transform and spatter (OpenCV-heavy).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from scipy import signal

from jtl.domains.corruptions import _plasma, motion_blur_float
from jtl.errors import JtlError

SIDE = 224  # ImageNet-C's image side: its pixel parameters are for 224x224 images

CorruptionRGB = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]


def _level(table: Sequence, severity: int) -> Any:
    if isinstance(severity, bool) or severity not in range(1, 6):
        raise JtlError(f"an ImageNet-C severity is an integer 1-5, got {severity!r}")
    return table[severity - 1]


def _unit(x: np.ndarray) -> np.ndarray:
    if x.dtype != np.uint8 or x.ndim != 4:
        raise JtlError(f"ImageNet-C corruptions take uint8 images (N, H, W, C), got "
                       f"{x.dtype} {x.shape}")
    return x.astype(np.float64) / 255.0


def _out(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _scale(x: np.ndarray) -> float:
    return min(x.shape[1], x.shape[2]) / SIDE


# ---------------------------------------------------------------------------------------------
# Noise


def gaussian_noise(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """x + N(0, c^2) per value; c = .08, .12, .18, .26, .38."""
    c = _level([0.08, 0.12, 0.18, 0.26, 0.38], severity)
    img = _unit(x)
    return _out(img + rng.normal(0.0, c, img.shape))


def shot_noise(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Poisson(x c) / c per value; c = 60, 25, 12, 5, 3 (photons at full intensity)."""
    c = _level([60, 25, 12, 5, 3], severity)
    return _out(rng.poisson(_unit(x) * c) / c)


def impulse_noise(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Salt and pepper: each value set to 0 or 1 with probability c; c = .03 .. .27."""
    c = _level([0.03, 0.06, 0.09, 0.17, 0.27], severity)
    img = _unit(x)
    flipped = rng.random(img.shape) <= c
    salted = rng.random(img.shape) <= 0.5
    img[flipped & salted] = 1.0
    img[flipped & ~salted] = 0.0
    return _out(img)


def speckle_noise(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """x + x N(0, c^2) per value (multiplicative); c = .15, .2, .35, .45, .6."""
    c = _level([0.15, 0.2, 0.35, 0.45, 0.6], severity)
    img = _unit(x)
    return _out(img + img * rng.normal(0.0, c, img.shape))


# ---------------------------------------------------------------------------------------------
# Blur


def gaussian_blur(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """skimage `gaussian(sigma=c)` per channel; c = 1, 2, 3, 4, 6 pixels at 224."""
    c = _level([1, 2, 3, 4, 6], severity) * _scale(x)
    return _out(ndi.gaussian_filter(_unit(x), (0, c, c, 0), mode="nearest", truncate=4.0))


def _cv2_gaussian_1d(ksize: int, sigma: float) -> np.ndarray:
    i = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(i**2) / (2 * sigma**2))
    return g / g.sum()


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """ImageNet-C's `disk`: the aliased disk on a grid of +-8 (+-radius above 8), normalised,
    then OpenCV's GaussianBlur (3x3, 5x5 above 8; reflect-101 borders)."""
    half = 8 if radius <= 8 else int(np.ceil(radius))
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    k = 3 if radius <= 8 else 5
    g = _cv2_gaussian_1d(k, alias_blur)
    return ndi.correlate1d(ndi.correlate1d(disk, g, 0, mode="mirror"), g, 1, mode="mirror")


def defocus_blur(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """The image filtered by an antialiased disk; (radius, alias sigma) = (3, .1), (4, .5),
    (6, .5), (8, .5), (10, .5) at 224."""
    radius, alias = _level([(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)], severity)
    kernel = _disk(max(radius * _scale(x), 0.5), alias)
    p = kernel.shape[0] // 2
    img = np.pad(_unit(x), ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")  # reflect-101
    out = signal.fftconvolve(img, kernel[None, :, :, None], mode="valid", axes=(1, 2))
    return _out(out)


def motion_blur(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """ImageMagick's MotionBlurImage(radius, sigma, angle ~ U(-45, 45) degrees per image);
    (radius, sigma) = (10, 3), (15, 5), (15, 8), (15, 12), (20, 15) at 224."""
    radius, sigma = _level([(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)], severity)
    s = _scale(x)
    return _out(motion_blur_float(_unit(x), rng, radius * s, sigma * s))


def _clipped_zoom(img: np.ndarray, z: float) -> np.ndarray:
    """ImageNet-C's `clipped_zoom` on (N, H, W, C): the centre ceil(side / z) crop zoomed by z
    (bilinear, scipy), its centre cut back to the image size."""
    h, w = img.shape[1:3]
    ch, cw = int(np.ceil(h / z)), int(np.ceil(w / z))
    top, left = (h - ch) // 2, (w - cw) // 2
    out = ndi.zoom(img[:, top:top + ch, left:left + cw], (1, z, z, 1), order=1)
    th, tw = (out.shape[1] - h) // 2, (out.shape[2] - w) // 2
    return out[:, th:th + h, tw:tw + w]


def zoom_blur(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """The mean of the image and its centre zooms by factors 1 .. 1.11 (step .01) up to
    1 .. 1.31 (step .03)."""
    stop, step = _level([(1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)],
                        severity)
    factors = np.arange(1, stop, step)
    img = _unit(x)
    out = np.zeros_like(img)
    for z in factors:
        out += _clipped_zoom(img, float(z))
    return _out((img + out) / (len(factors) + 1))


# ---------------------------------------------------------------------------------------------
# Weather, digital


def fog(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Add c * a plasma fractal (one per image), rescale by max / (max + c); (c, decay) =
    (1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)."""
    c, decay = _level([(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)], severity)
    n, h, w = x.shape[:3]
    size = max(256, 1 << int(np.ceil(np.log2(max(h, w)))))
    img = _unit(x)
    top = img.max(axis=(1, 2, 3), keepdims=True)
    for i in range(0, n, 16):  # the maps in chunks: bounded memory
        layer = _plasma(rng, min(16, n - i), decay, size)[:, :h, :w, None]
        img[i:i + 16] += c * layer
    return _out(img * top / (top + c))


def contrast(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """(x - mean) c + mean, the mean per image and channel; c = .4, .3, .2, .1, .05."""
    c = _level([0.4, 0.3, 0.2, 0.1, 0.05], severity)
    img = _unit(x)
    means = img.mean(axis=(1, 2), keepdims=True)
    return _out((img - means) * c + means)


def _value_saturation(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HSV's V (max channel) and S ((max - min) / max, 0 where max = 0), kept as (N, H, W, 1)."""
    v = img.max(axis=-1, keepdims=True)
    s = np.where(v > 0, (v - img.min(axis=-1, keepdims=True)) / np.maximum(v, 1e-12), 0.0)
    return v, s


def brightness(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """HSV's V + c, clipped; c = .1 .. .5. With H and S fixed RGB is V times a colour, so the
    new image is x V' / V (grey V' where V = 0)."""
    c = _level([0.1, 0.2, 0.3, 0.4, 0.5], severity)
    img = _unit(x)
    v = img.max(axis=-1, keepdims=True)
    v2 = np.clip(v + c, 0.0, 1.0)
    return _out(np.where(v > 0, img * v2 / np.maximum(v, 1e-12), v2))


def saturate(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """HSV's S c0 + c1, clipped; (c0, c1) = (.3, 0), (.1, 0), (2, 0), (5, .1), (20, .2). With H
    and V fixed each channel is V - (V - x) S' / S; a grey pixel (S = 0) has hue 0 in skimage,
    so it becomes (V, V (1 - S'), V (1 - S')). RGB only."""
    if x.shape[-1] != 3:
        raise JtlError(f"ImageNet-C's saturate changes colour: it needs RGB images (C = 3), "
                       f"got C = {x.shape[-1]}")
    c0, c1 = _level([(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)], severity)
    img = _unit(x)
    v, s = _value_saturation(img)
    s2 = np.clip(s * c0 + c1, 0.0, 1.0)
    coloured = v - (v - img) * s2 / np.maximum(s, 1e-12)
    grey = np.concatenate([v, v * (1 - s2), v * (1 - s2)], axis=-1)
    return _out(np.where(s > 0, coloured, grey))


def _per_image(x: np.ndarray, fn: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    mode = "RGB" if x.shape[-1] == 3 else "L"
    out = [np.asarray(fn(Image.fromarray(img if mode == "RGB" else img[..., 0], mode)))
           for img in x]
    return np.stack(out).reshape(x.shape).astype(np.uint8) if out else x.copy()


def jpeg_compression(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Pillow's JPEG at quality c = 25, 18, 15, 10, 7."""
    quality = _level([25, 18, 15, 10, 7], severity)
    _unit(x)

    def jpeg(img: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        return Image.open(buf).convert(img.mode)

    return _per_image(x, jpeg)


def pixelate(x: np.ndarray, rng: np.random.Generator, severity: int) -> np.ndarray:
    """Box-downsampled to c of the side and box-upsampled back (Pillow); c = .6 .. .25."""
    c = _level([0.6, 0.5, 0.4, 0.3, 0.25], severity)
    _unit(x)
    h, w = x.shape[1:3]
    small = (max(1, int(w * c)), max(1, int(h * c)))
    return _per_image(x, lambda img: img.resize(small, Image.BOX).resize((w, h), Image.BOX))


CORRUPTIONS_RGB: dict[str, CorruptionRGB] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "saturate": saturate,
    "jpeg_compression": jpeg_compression,
    "pixelate": pixelate,
}
