"""MNIST-C's 15 corruptions (Mu & Gilmer 2019) as array functions, in numpy and scipy only.

Each function maps images `x` (N, H, W, C) float in [0, 1] and a numpy Generator to corrupted
images of the same shape, float32 in [0, 1]. Parameters are those of google-research/mnist-c
`corruptions.py` (its severity tables and default severities, which made the published data
set); random draws are made per image where MNIST-C draws per image (per pixel for the
noises), all from the one Generator, so a seed names the corrupted set. MNIST-C's own code
uses skimage, ImageMagick (wand) and OpenCV; the few steps written differently here are named
in the function that takes them and summarised in `jtl.domains.shifts`.

Sizes: at 28x28 (MNIST-C's size) every parameter is MNIST-C's. On other sizes, lengths
(blur sigmas, the motion-blur radius, the glass-blur swap distance, translations, stripe
widths) scale with min(H, W) / 28, geometric transforms keep the image centre fixed, and
layers that MNIST-C draws on its 28x28 grid (fog, spatter, lines, zigzags) are drawn there
and resized bilinearly. Colour images: noise is drawn per channel, everything else is shared
across channels (one blur angle, one fog layer, edges of the channel mean).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

SIDE = 28  # MNIST-C's image side: its pixel parameters are for 28x28 images

Corruption = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]


# ---------------------------------------------------------------------------------------------
# Helpers


def _out(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _scale(x: np.ndarray) -> float:
    """Image side relative to MNIST-C's 28 pixels."""
    return min(x.shape[1], x.shape[2]) / SIDE


def _gauss(x: np.ndarray, sigma: float | tuple[float, float], mode: str = "nearest",
           ) -> np.ndarray:
    """skimage.filters.gaussian (truncate 4) over the spatial axes of (N, H, W[, C])."""
    sr, sc = (sigma, sigma) if np.isscalar(sigma) else sigma  # type: ignore[misc]
    sig = (0.0, sr, sc) + (0.0,) * (x.ndim - 3)
    return ndi.gaussian_filter(np.asarray(x, np.float64), sig, mode=mode, truncate=4.0)


def _resize(layer: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N, 28, 28) layer -> (N, h, w), bilinear; unchanged at 28x28."""
    if layer.shape[1:] == (h, w):
        return layer
    return ndi.zoom(layer, (1, h / layer.shape[1], w / layer.shape[2]), order=1,
                    mode="nearest", grid_mode=True)


def _warp(x: np.ndarray, A: np.ndarray, t: Sequence[float]) -> np.ndarray:
    """skimage `transform.warp(x, inverse_map=AffineTransform)`: bilinear, zero outside.

    A (2x2) and t map an output pixel (col, row) to the input point it samples, in skimage's
    (x, y) order; mode 'grid-constant' interpolates against the zero border as skimage does.
    """
    n, c = x.shape[0], x.shape[3]
    flat = np.moveaxis(x, 3, 1).reshape(n * c, x.shape[1], x.shape[2])
    m = np.array([[1.0, 0, 0], [0, A[1, 1], A[1, 0]], [0, A[0, 1], A[0, 0]]])
    out = ndi.affine_transform(flat, m, offset=(0.0, t[1], t[0]), order=1,
                               mode="grid-constant", cval=0.0)
    return np.moveaxis(out.reshape(n, c, x.shape[1], x.shape[2]), 1, 3)


def _centred(x: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Warp by A about the image centre (13.5, 13.5 at 28x28, as MNIST-C fixes it)."""
    centre = np.array([(x.shape[2] - 1) / 2, (x.shape[1] - 1) / 2])
    return _warp(x, A, centre - A @ centre)


def _by_sign(x: np.ndarray, rng: np.random.Generator, make: Callable[[float], np.ndarray],
             ) -> np.ndarray:
    """MNIST-C's `np.random.choice([-1, 1])` per image: warp each image by make(sign)."""
    signs = rng.choice([-1, 1], size=len(x))
    out = np.empty_like(x, dtype=np.float64)
    for s in (-1, 1):
        idx = np.flatnonzero(signs == s)
        if idx.size:
            out[idx] = _centred(x[idx], make(float(s)))
    return out


def _line(c0: np.ndarray, r0: np.ndarray, c1: np.ndarray, r1: np.ndarray) -> np.ndarray:
    """MNIST-C's `line_from_points` on the 28x28 grid, one line per image: (N, 28, 28).

    Intensity 1 + log(1 - d / 2.3) at distance d from the line (rows), clipped to [0, 1],
    only over columns floor(c0) .. ceil(c1) - 1; a vertical segment (c0 == c1) draws nothing.
    """
    c0, r0, c1, r1 = (np.asarray(v, np.float64)[:, None, None] for v in (c0, r0, c1, r1))
    grid = np.arange(SIDE, dtype=np.float64)
    cc, rr = grid[None, None, :], grid[None, :, None]
    flat = c1 == c0
    m = np.where(flat, 0.0, (r1 - r0) / np.where(flat, 1.0, c1 - c0))
    dist = np.clip(np.abs(rr - (m * (cc - c0) + r0)), 0, 2.3 - 1e-10)
    out = np.clip(np.log(1 - dist / 2.3) + 1, 0, 1)
    inside = (cc >= np.floor(c0)) & (cc < np.ceil(c1))
    return np.where(inside & ~flat, out, 0.0)


def _level(table: Sequence, severity: int) -> Any:
    return table[severity - 1]


# ---------------------------------------------------------------------------------------------
# Noise


def shot_noise(x: np.ndarray, rng: np.random.Generator, severity: int = 5) -> np.ndarray:
    """Poisson photon noise: Poisson(x * c) / c per pixel, c = 60, 25, 12, 5, 3."""
    c = _level([60, 25, 12, 5, 3], severity)
    return _out(rng.poisson(np.asarray(x, np.float64) * c) / float(c))


def impulse_noise(x: np.ndarray, rng: np.random.Generator, severity: int = 4) -> np.ndarray:
    """Salt and pepper (skimage `random_noise(mode='s&p')`): each pixel with probability
    `amount` = .03, .06, .09, .17, .27 becomes 1 or 0, even odds."""
    amount = _level([0.03, 0.06, 0.09, 0.17, 0.27], severity)
    flipped = rng.random(x.shape) < amount
    salted = rng.random(x.shape) < 0.5
    return _out(np.where(flipped, salted.astype(np.float64), x))


# ---------------------------------------------------------------------------------------------
# Blur


def glass_blur(x: np.ndarray, rng: np.random.Generator, severity: int = 1) -> np.ndarray:
    """Blur, shuffle pixels locally, blur again (sigma, max_delta, iterations).

    As in MNIST-C, the blurs run along rows only (axis 0 of its 2-D image: skimage's
    `gaussian(..., multichannel=True)` read the columns axis as channels), the first blur is
    truncated to 8 bits, and a sweep from the bottom-right corner swaps each pixel, with
    probability 1/2, with one at offset (dy, dx), each in [-delta, delta - 1].
    """
    sigma, delta, iterations = _level([(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2),
                                       (1.5, 4, 2)], severity)
    s = _scale(x)
    sigma, delta = sigma * s, max(1, round(delta * s))
    n, h, w = x.shape[:3]
    img = np.floor(_gauss(x, (sigma, 0.0)) * 255) / 255  # np.uint8(... * 255) in MNIST-C
    for _ in range(iterations):
        for r in range(h - delta, delta, -1):
            for c in range(w - delta, delta, -1):
                swap = np.flatnonzero(rng.random(n) < 0.5)
                d = rng.integers(-delta, delta, size=(n, 2))[swap]
                rp, cp = r + d[:, 1], c + d[:, 0]
                here = img[swap, r, c].copy()
                img[swap, r, c] = img[swap, rp, cp]
                img[swap, rp, cp] = here
    return _out(_gauss(img, (sigma, 0.0)))


def motion_blur(x: np.ndarray, rng: np.random.Generator, severity: int = 1) -> np.ndarray:
    """ImageMagick's MotionBlurImage(radius, sigma, angle ~ U(-45, 45) degrees per image).

    A one-sided kernel of 2 * ceil(radius) + 1 taps weighted exp(-i^2 / (2 sigma^2)), tap i
    reading the pixel at (round(i sin a), round(i cos a)) rows/cols away, edges repeated, as
    ImageMagick does (radius, sigma = (10, 3), (15, 5), (15, 8), (15, 12), (20, 15)). MNIST-C
    round-trips through 8-bit PNG; this keeps the float result.
    """
    radius, sigma = _level([(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)], severity)
    s = _scale(x)
    return _out(motion_blur_float(np.asarray(x, np.float64), rng, radius * s, sigma * s))


def motion_blur_float(img: np.ndarray, rng: np.random.Generator, radius: float,
                      sigma: float) -> np.ndarray:
    """The motion-blur kernel on float (N, H, W[, C]) images, one angle per image drawn from
    `rng`: shared by MNIST-C's and ImageNet-C's motion_blur (their radius/sigma tables)."""
    width = int(2 * np.ceil(radius) + 1)
    taps = np.arange(width, dtype=np.float64)
    kernel = np.exp(-(taps**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    n, h, w = img.shape[:3]
    angle = np.deg2rad(rng.uniform(-45, 45, size=n))
    dr = np.ceil(taps[None] * np.sin(angle)[:, None] - 0.5).astype(np.int64)  # (N, width)
    dc = np.ceil(taps[None] * np.cos(angle)[:, None] - 0.5).astype(np.int64)
    rows, cols = np.arange(h), np.arange(w)
    out = np.zeros_like(img)
    nn = np.arange(n)[:, None, None]
    for i in range(width):
        rr = np.clip(rows[None, :, None] + dr[:, i, None, None], 0, h - 1)
        cc = np.clip(cols[None, None, :] + dc[:, i, None, None], 0, w - 1)
        out += kernel[i] * img[nn, rr, cc]
    return out


# ---------------------------------------------------------------------------------------------
# Affine


def shear(x: np.ndarray, rng: np.random.Generator, severity: int = 2) -> np.ndarray:
    """skimage AffineTransform(shear=±c) about the centre, sign per image; c = .2 .. 1."""
    c = _level([0.2, 0.4, 0.6, 0.8, 1.0], severity)
    return _out(_by_sign(x, rng, lambda s: np.array([[1.0, -np.sin(s * c)],
                                                     [0.0, np.cos(s * c)]])))


def rotate(x: np.ndarray, rng: np.random.Generator, severity: int = 2) -> np.ndarray:
    """Rotation by ±c radians about the centre, sign per image; c = .2 .. 1 (0.4: 22.9°)."""
    c = _level([0.2, 0.4, 0.6, 0.8, 1.0], severity)
    return _out(_by_sign(x, rng, lambda s: np.array([[np.cos(s * c), -np.sin(s * c)],
                                                     [np.sin(s * c), np.cos(s * c)]])))


def scale(x: np.ndarray, rng: np.random.Generator, severity: int = 3) -> np.ndarray:
    """Shrink about the centre to .9, .8, .7, .6, .5 of the size (MNIST-C samples at 1/c)."""
    c = _level([0.9, 0.8, 0.7, 0.6, 0.5], severity)
    return _out(_centred(np.asarray(x, np.float64), np.eye(2) / c))


def translate(x: np.ndarray, rng: np.random.Generator, severity: int = 3) -> np.ndarray:
    """Shift by c = 1 .. 5 pixels along each axis, each direction's sign per image."""
    c = _level([1, 2, 3, 4, 5], severity) * _scale(x)
    signs = rng.choice([-1, 1], size=(len(x), 2))
    out = np.empty_like(x, dtype=np.float64)
    for sx in (-1, 1):
        for sy in (-1, 1):
            idx = np.flatnonzero((signs[:, 0] == sx) & (signs[:, 1] == sy))
            if idx.size:
                out[idx] = _warp(np.asarray(x[idx], np.float64), np.eye(2), (sx * c, sy * c))
    return _out(out)


# ---------------------------------------------------------------------------------------------
# Intensity and overlays


def brightness(x: np.ndarray, rng: np.random.Generator, severity: int = 5) -> np.ndarray:
    """Add c = .1 .. .5 to the HSV value channel (for grey images: clip(x + c, 0, 1))."""
    c = _level([0.1, 0.2, 0.3, 0.4, 0.5], severity)
    img = np.asarray(x, np.float64)
    v = img.max(axis=-1, keepdims=True)
    new = np.clip(v + c, 0, 1)
    ratio = np.divide(new, v, out=np.zeros_like(v), where=v > 0)
    return _out(np.where(v > 0, img * ratio, new))  # hue and saturation kept


def stripe(x: np.ndarray, rng: np.random.Generator, severity: int = 0) -> np.ndarray:
    """Invert the left and right quarters (columns 0-6 and 21-27 of 28)."""
    img = np.array(x, np.float64)
    w = img.shape[2]
    lo, hi = round(7 * w / SIDE), round(21 * w / SIDE)
    img[:, :, :lo] = 1 - img[:, :, :lo]
    img[:, :, hi:] = 1 - img[:, :, hi:]
    return _out(img)


def _plasma(rng: np.random.Generator, n: int, decay: float, mapsize: int = 256) -> np.ndarray:
    """MNIST-C's `plasma_fractal` (diamond-square, wibble 100 scaled by 1/decay per level),
    n maps at once: (n, mapsize, mapsize) in [0, 1]."""
    a = np.empty((n, mapsize, mapsize))
    a[:, 0, 0] = 0
    step, wibble = mapsize, 100.0

    def wibbled(v: np.ndarray) -> np.ndarray:
        return v / 4 + wibble * rng.uniform(-wibble, wibble, v.shape)

    while step >= 2:
        half = step // 2
        corner = a[:, 0::step, 0::step]
        acc = corner + np.roll(corner, -1, axis=1)
        acc = acc + np.roll(acc, -1, axis=2)
        a[:, half::step, half::step] = wibbled(acc)
        dr, ul = a[:, half::step, half::step], a[:, 0::step, 0::step]
        a[:, 0::step, half::step] = wibbled(dr + np.roll(dr, 1, axis=1)
                                            + ul + np.roll(ul, -1, axis=2))
        a[:, half::step, 0::step] = wibbled(dr + np.roll(dr, 1, axis=2)
                                            + ul + np.roll(ul, -1, axis=1))
        step //= 2
        wibble /= decay
    a -= a.min(axis=(1, 2), keepdims=True)
    return a / a.max(axis=(1, 2), keepdims=True)


def fog(x: np.ndarray, rng: np.random.Generator, severity: int = 5) -> np.ndarray:
    """Add c * a plasma fractal (one per image, its 28x28 corner), rescale by max / (max + c);
    (c, decay) = (1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)."""
    c, decay = _level([(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)], severity)
    n, h, w = x.shape[:3]
    layer = np.empty((n, SIDE, SIDE))
    for i in range(0, n, 64):  # 256x256 maps in chunks: bounded memory
        layer[i:i + 64] = _plasma(rng, min(64, n - i), decay)[:, :SIDE, :SIDE]
    img = np.asarray(x, np.float64)
    top = img.max(axis=(1, 2, 3), keepdims=True)
    return _out((img + c * _resize(layer, h, w)[..., None]) * top / (top + c))


def spatter(x: np.ndarray, rng: np.random.Generator, severity: int = 4) -> np.ndarray:
    """Mud blobs: a Gaussian field (loc, scale) blurred, thresholded, blurred into a mask m,
    kept where m >= .8; x -> x * (1 - m) + (63 / 255) * m (MNIST-C's 'mud' branch)."""
    loc, sd, sigma, thresh, sigma_m = _level(
        [(0.65, 0.3, 4, 0.69, 0.6), (0.65, 0.3, 3, 0.68, 0.6), (0.65, 0.3, 2, 0.68, 0.5),
         (0.65, 0.3, 1, 0.65, 1.5), (0.67, 0.4, 1, 0.65, 1.5)], severity)
    n, h, w = x.shape[:3]
    liquid = _gauss(rng.normal(loc, sd, size=(n, SIDE, SIDE)), sigma)
    m = _gauss((liquid > thresh).astype(np.float64), sigma_m)
    m[m < 0.8] = 0
    m = _resize(m, h, w)[..., None]
    return _out(np.asarray(x, np.float64) * (1 - m) + 63 / 255 * m)


def dotted_line(x: np.ndarray, rng: np.random.Generator, severity: int = 0) -> np.ndarray:
    """A line from (col 0, row r0) to (col 27, row r1), r0, r1 in 0..26 per image, drawn in
    2-pixel dashes (columns 2-3, 6-7, ... on)."""
    n, h, w = x.shape[:3]
    r = rng.integers(0, 27, size=(n, 2))
    layer = _line(np.zeros(n), r[:, 0], np.full(n, 27.0), r[:, 1])
    layer[:, :, (np.arange(SIDE) // 2) % 2 == 0] = 0
    return _out(np.asarray(x, np.float64) + _resize(layer, h, w)[..., None])


def _zigzag_points(dr: int, a: float = 2.0, b: float = 2.0) -> np.ndarray:
    """MNIST-C's zigzag vertices (cols, rows) for a rise of dr rows over cols 2..25, r0 = 0."""
    c0, c1 = 2, 25
    theta = np.arctan(dr / (c1 - c0))
    d = (c1 - c0) / np.cos(theta)
    pts = [(0.0, 0.0)]
    r_i = 0.0
    for i in range(int((d - a) // (2 * a)) + 1):
        r_i = (-1) ** i * b
        pts.append(((2 * i + 1) * a, r_i))
    max_c = (2 * a) * (d // (2 * a))
    if d != max_c:
        pts.append((d, r_i / (2 * (d - max_c))))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cs, rs = rot @ np.array(pts).T
    return np.stack([cs + c0, rs])


def zigzag(x: np.ndarray, rng: np.random.Generator, severity: int = 0) -> np.ndarray:
    """A zigzag (2-pixel teeth) from column 2 to 25, starting at row r0 in 0..26 and rising
    by r1 - r0 in -5..4 rows, per image; its segments drawn with `_line` and added."""
    n, h, w = x.shape[:3]
    r0 = rng.integers(0, 27, size=n)
    rise = rng.integers(-5, 5, size=n)
    layer = np.zeros((n, SIDE, SIDE))
    for dr in np.unique(rise):
        idx = np.flatnonzero(rise == dr)
        cs, rs = _zigzag_points(int(dr))
        for j in range(1, cs.size):
            layer[idx] += _line(np.full(idx.size, cs[j - 1]), r0[idx] + rs[j - 1],
                                np.full(idx.size, cs[j]), r0[idx] + rs[j])
    # MNIST-C adds and clips segment by segment: the same as clipping once (all >= 0).
    return _out(np.asarray(x, np.float64) + _resize(layer, h, w)[..., None])


# ---------------------------------------------------------------------------------------------
# Canny edges (skimage.feature.canny with its defaults: sigma 1, thresholds 0.1 and 0.2)


def _sobel(img: np.ndarray, axis: int) -> np.ndarray:
    """scipy.ndimage.sobel over one spatial axis of (N, H, W), smoothing only the other."""
    other = 3 - axis
    d = ndi.correlate1d(img, [-1, 0, 1], axis=axis, mode="reflect")
    return ndi.correlate1d(d, [1, 2, 1], axis=other, mode="reflect")


def _shifted(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """b[:, i, j] = a[:, i + dr, j + dc] (zero outside; only interior pixels are read)."""
    p = np.pad(a, ((0, 0), (1, 1), (1, 1)))
    h, w = a.shape[1:]
    return p[:, 1 + dr:1 + dr + h, 1 + dc:1 + dc + w]


def _canny(gray: np.ndarray, sigma: float, low: float = 0.1, high: float = 0.2) -> np.ndarray:
    """skimage's Canny on (N, H, W) images: (N, H, W) bool edges."""
    smoothed = _gauss(gray, sigma, mode="constant")
    smoothed /= _gauss(np.ones_like(gray), sigma, mode="constant") + np.finfo(float).eps
    isobel, jsobel = _sobel(smoothed, 1), _sobel(smoothed, 2)
    ai, aj = np.abs(isobel), np.abs(jsobel)
    mag = np.hypot(isobel, jsobel)
    inner = np.zeros(mag.shape, bool)
    inner[:, 1:-1, 1:-1] = True  # skimage erodes the mask: border pixels are never edges
    inner &= mag > 0
    horizontal, vertical = inner & (ai >= aj), inner & (ai <= aj)
    up, down, right, left = isobel >= 0, isobel <= 0, jsobel >= 0, jsobel <= 0
    w_h = np.divide(aj, ai, out=np.zeros_like(ai), where=ai > 0)
    w_v = np.divide(ai, aj, out=np.zeros_like(aj), where=aj > 0)
    maxima = np.zeros(mag.shape, bool)
    # skimage's four normal sectors, in its order (later ones overwrite shared points):
    # (points, weight, first neighbour, second neighbour); the opposite pair is mirrored.
    diag, anti = (up & right) | (down & left), (down & right) | (up & left)
    for pts, wt, n1, n2 in ((diag & horizontal, w_h, (1, 0), (1, 1)),
                            (diag & vertical, w_v, (0, 1), (1, 1)),
                            (anti & vertical, w_v, (0, 1), (-1, 1)),
                            (anti & horizontal, w_h, (-1, 0), (-1, 1))):
        plus = _shifted(mag, *n2) * wt + _shifted(mag, *n1) * (1 - wt) <= mag
        minus = (_shifted(mag, -n2[0], -n2[1]) * wt
                 + _shifted(mag, -n1[0], -n1[1]) * (1 - wt) <= mag)
        maxima[pts] = (plus & minus)[pts]
    low_mask = maxima & (mag >= low)
    high_mask = maxima & (mag >= high)
    within = np.zeros((3, 3, 3), bool)
    within[1] = True  # 8-connected within an image, never across images
    labels, count = ndi.label(low_mask, within)
    keep = np.zeros(count + 1, bool)
    keep[np.unique(labels[high_mask])] = True
    keep[0] = False
    return keep[labels]


def canny_edges(x: np.ndarray, rng: np.random.Generator, severity: int = 0) -> np.ndarray:
    """Binary Canny edge map (skimage defaults: sigma 1, hysteresis 0.1 / 0.2), of the channel
    mean for colour images, in every channel."""
    edges = _canny(np.asarray(x, np.float64).mean(axis=-1), 1.0 * _scale(x))
    return np.repeat(edges[..., None], x.shape[3], axis=3).astype(np.float32)


# name -> (function, MNIST-C's severity or None where its corruption has none)
CORRUPTIONS: dict[str, tuple[Corruption, int | None]] = {
    "shot_noise": (shot_noise, 5),
    "impulse_noise": (impulse_noise, 4),
    "glass_blur": (glass_blur, 1),
    "motion_blur": (motion_blur, 1),
    "shear": (shear, 2),
    "scale": (scale, 3),
    "rotate": (rotate, 2),
    "brightness": (brightness, 5),
    "translate": (translate, 3),
    "stripe": (stripe, None),
    "fog": (fog, 5),
    "spatter": (spatter, 4),
    "dotted_line": (dotted_line, None),
    "zigzag": (zigzag, None),
    "canny_edges": (canny_edges, None),
}
