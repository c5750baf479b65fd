"""Shift transforms composable on any domain, so one data set yields many controlled targets.

A domain config lists shifts in order, each a bare name (`invert`) or a mapping with its
parameters (`{name: rotate, degrees: 30}`). Image shifts apply to train, val and test alike
(the shifted domain *is* the domain); `label_shift` changes the train split only, because
the point of a prior shift is that training and evaluation class frequencies differ.

Every random choice is drawn from the domain's `split_seed`, so a config names one data set.

MNIST-C (Mu & Gilmer 2019; google-research/mnist-c `corruptions.py`, numpy/scipy versions in
`jtl.domains.corruptions`): `shot_noise`, `impulse_noise`, `glass_blur`, `motion_blur`,
`shear`, `scale`, `rotate` (without `degrees`), `brightness`, `translate`, `stripe`, `fog`,
`spatter`, `dotted_line`, `zigzag`, `canny_edges`, e.g. `target.shifts=[{name: fog}]`. Each
runs at MNIST-C's severity by default; those with a severity table take `severity: 1-5`.
At 28x28 they follow MNIST-C's parameters and steps, drawing per image (per pixel for noise)
where it does, with these departures:
- random streams: numpy's Generator, not MNIST-C's global `np.random`, so the same
  distribution, not MNIST-C's published images;
- `impulse_noise`: skimage's Bernoulli salt-and-pepper, written out;
- `glass_blur`: as MNIST-C, its two blurs run along rows only (skimage read the 2-D image's
  last axis as channels) and the first is cut to 8 bits; the swaps are vectorised over images;
- `motion_blur`: ImageMagick's MotionBlurImage kernel written out (one-sided Gaussian taps,
  rounded offsets, edge pixels repeated), without its 8-bit PNG round trip;
- `canny_edges`: skimage's Canny (sigma 1, hysteresis 0.1/0.2) written out on scipy;
- `shear`, `rotate`, `scale`, `translate`: skimage's AffineTransform/warp as a scipy affine
  map (bilinear, zero border); shear is skimage's pre-0.19 convention, which MNIST-C used.
Other image sizes scale lengths by side/28 and resize MNIST-C's 28x28 layers (see the
corruptions module); the plain `rotate` (with `degrees`) is unchanged.

ImageNet-C (Hendrycks & Dietterich 2019; `jtl.domains.corruptions_rgb`): one shift,
`imagenet_c`, whose `corruption` is one of gaussian_noise, shot_noise, impulse_noise,
speckle_noise, gaussian_blur, defocus_blur, motion_blur, zoom_blur, fog, brightness, contrast,
saturate, jpeg_compression, pixelate, at `severity` 1-5 (both required), e.g.
`target.shifts=[{name: imagenet_c, corruption: gaussian_noise, severity: 3}]` on an
imagefolder / office31 domain. One name with a parameter because MNIST-C's shot_noise, fog,
... are other corruptions with the same names. Images go through as 8 bits (ImageNet-C's
images are); parameters are ImageNet-C's at 224x224, lengths scaled by side/224.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jtl.domains.base import Split
from jtl.errors import JtlError

ShiftFn = Callable[[Split, Mapping[str, Any], np.random.Generator, int], Split]


@dataclasses.dataclass(frozen=True)
class _Shift:
    fn: ShiftFn
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    train_only: bool = False


def _rotate(split: Split, p: Mapping[str, Any], rng: np.random.Generator, _: int) -> Split:
    """Rotate by `degrees` (counter-clockwise), or by U(-degrees, degrees) per image; without
    `degrees`, MNIST-C's rotate (±0.4 rad, the sign per image; `severity` 1-5)."""
    from scipy.ndimage import rotate

    if "degrees" not in p:
        if "random" in p:
            raise JtlError("shift 'rotate': `random` needs `degrees` (U(-degrees, degrees)); "
                           "without `degrees` it is MNIST-C's rotation, set by `severity`")
        return _mnistc("rotate")(split, p, rng, _)
    if "severity" in p:
        raise JtlError("shift 'rotate': give `degrees` (with `random`) or MNIST-C's "
                       "`severity`, not both")
    degrees = float(p["degrees"])
    if p.get("random", False):
        angles = rng.uniform(-degrees, degrees, size=len(split))
        x = np.stack([rotate(img, a, axes=(1, 0), reshape=False, order=1)
                      for img, a in zip(split.x, angles, strict=True)]) if len(split) else split.x
    elif degrees % 360 == 0:
        return split
    else:
        x = rotate(split.x, degrees, axes=(2, 1), reshape=False, order=1)
    return Split.of(np.clip(x, 0.0, 1.0).astype(np.float32), split.y)


def _noise(split: Split, p: Mapping[str, Any], rng: np.random.Generator, _: int) -> Split:
    """Additive Gaussian pixel noise, clipped back to the [0, 1] image range."""
    std = float(p["std"])
    if std < 0:
        raise JtlError(f"shift 'noise' needs std >= 0, got {std}")
    x = split.x + rng.normal(0.0, std, size=split.x.shape).astype(np.float32)
    return Split.of(np.clip(x, 0.0, 1.0).astype(np.float32), split.y)


def _invert(split: Split, p: Mapping[str, Any], rng: np.random.Generator, _: int) -> Split:
    """Light digits on dark <-> dark on light: the classic polarity shift."""
    return Split.of((1.0 - split.x).astype(np.float32), split.y)


def _label_shift(split: Split, p: Mapping[str, Any], rng: np.random.Generator,
                 num_classes: int) -> Split:
    """Subsample so that class c makes up weights[c] / sum(weights) of the split.

    The result is the largest subset with those proportions (the scarcest class relative to
    its weight is kept whole); a weight of 0 removes that class.
    """
    w = np.asarray(p["weights"], dtype=np.float64)
    if w.shape != (num_classes,) or (w < 0).any() or w.sum() == 0:
        raise JtlError(f"shift 'label_shift' needs `weights`: {num_classes} non-negative "
                       f"numbers, not all 0; got {p['weights']!r}")
    prior = w / w.sum()
    counts = np.bincount(split.y, minlength=num_classes)[:num_classes]
    present = prior > 0
    if (counts[present] == 0).any():
        missing = np.flatnonzero(present & (counts == 0)).tolist()
        raise JtlError(f"shift 'label_shift' asks for classes {missing}, which this split lacks")
    total = np.min(counts[present] / prior[present])
    keep_n = np.floor(total * prior + 1e-9).astype(int)
    keep = [rng.permutation(np.flatnonzero(split.y == c))[:n] for c, n in enumerate(keep_n)]
    idx = np.sort(np.concatenate(keep))
    return split.take(idx)


def _derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation with no fixed point, so no class keeps its meaning."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if n < 2 or not (perm == np.arange(n)).any():
            return perm


def _label_permutation(p: Mapping[str, Any], num_classes: int) -> np.ndarray:
    if ("perm" in p) == ("seed" in p):
        raise JtlError("shift 'permute_labels' needs exactly one of `perm` (a list) or `seed`")
    if "seed" in p:
        return _derangement(num_classes, int(p["seed"]))
    perm = np.asarray(p["perm"], dtype=np.int64)
    if sorted(perm.tolist()) != list(range(num_classes)):
        raise JtlError(f"shift 'permute_labels': `perm` must be a permutation of "
                       f"0..{num_classes - 1}, got {p['perm']!r}")
    return perm


def _permute_labels(split: Split, p: Mapping[str, Any], rng: np.random.Generator,
                    num_classes: int) -> Split:
    """Relabel class c as perm[c]: same images, unrelated labels (negative-transfer source)."""
    perm = _label_permutation(p, num_classes)
    return Split.of(split.x, perm[split.y].astype(split.y.dtype))


_CHUNK = 4096  # images per call of a corruption (its float64 temporaries: ~100 MB at 28x28)


def _mnistc(name: str) -> ShiftFn:
    """MNIST-C's corruption `name` as a shift, at `severity` (default: MNIST-C's own)."""

    def shift(split: Split, p: Mapping[str, Any], rng: np.random.Generator, _: int) -> Split:
        from jtl.domains.corruptions import CORRUPTIONS

        fn, default = CORRUPTIONS[name]
        severity = p.get("severity", default)
        if default is not None and (isinstance(severity, bool) or severity not in range(1, 6)):
            raise JtlError(f"shift '{name}': `severity` is an integer 1-5 (MNIST-C uses "
                           f"{default}), got {severity!r}")
        if not len(split):
            return split
        # In fixed chunks, one stream: memory stays bounded and the result is the same.
        x = np.concatenate([fn(split.x[i:i + _CHUNK], rng, int(severity or 0))
                            for i in range(0, len(split), _CHUNK)])
        return Split.of(x, split.y)

    return shift


_RGB_CHUNK = 64  # images per call of an ImageNet-C corruption (float64 temporaries at 224x224)


def _imagenet_c(split: Split, p: Mapping[str, Any], rng: np.random.Generator, _: int) -> Split:
    """ImageNet-C's `corruption` at `severity` 1-5 (jtl/domains/corruptions_rgb.py): the
    stored images as 8 bits in, 8 bits out, as ImageNet-C's images are."""
    from jtl.domains.corruptions_rgb import CORRUPTIONS_RGB

    name, severity = p["corruption"], p["severity"]
    if name not in CORRUPTIONS_RGB:
        raise JtlError(f"shift 'imagenet_c': unknown corruption {name!r}; known: "
                       f"{', '.join(CORRUPTIONS_RGB)}")
    if isinstance(severity, bool) or severity not in range(1, 6):
        raise JtlError(f"shift 'imagenet_c': `severity` is an integer 1-5, got {severity!r}")
    if not len(split):
        return split
    x = split.x
    u8 = x if x.dtype == np.uint8 else np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)
    out = np.concatenate([CORRUPTIONS_RGB[name](u8[i:i + _RGB_CHUNK], rng, int(severity))
                          for i in range(0, len(split), _RGB_CHUNK)])
    return Split.of(out if x.dtype == np.uint8 else (out / np.float32(255)).astype(np.float32),
                    split.y)


_SEVERITY = frozenset({"severity"})
# MNIST-C's corruptions (jtl/domains/corruptions.py); `rotate` is shared with the plain one.
_MNISTC = ("shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale",
           "brightness", "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag",
           "canny_edges")
_NO_SEVERITY = ("stripe", "dotted_line", "zigzag", "canny_edges")

SHIFTS: dict[str, _Shift] = {
    "rotate": _Shift(_rotate, optional=frozenset({"degrees", "random", "severity"})),
    "noise": _Shift(_noise, frozenset({"std"})),
    "invert": _Shift(_invert),
    "label_shift": _Shift(_label_shift, frozenset({"weights"}), train_only=True),
    "permute_labels": _Shift(_permute_labels, optional=frozenset({"perm", "seed"})),
    "imagenet_c": _Shift(_imagenet_c, frozenset({"corruption", "severity"})),
    **{name: _Shift(_mnistc(name), optional=frozenset() if name in _NO_SEVERITY else _SEVERITY)
       for name in _MNISTC},
}


def _plain(v: Any) -> Any:
    """OmegaConf containers -> dict/list, so shifts see ordinary Python values."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, Sequence) and not isinstance(v, str):
        return [_plain(x) for x in v]
    return v


def parse_shift(spec: Any) -> tuple[str, dict[str, Any]]:
    """A config entry -> (name, params), checking the name and parameter names."""
    spec = _plain(spec)
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict) and "name" in spec:
        params = dict(spec)
        name = str(params.pop("name"))
    else:
        raise JtlError(f"a shift is a name or a mapping with `name:`, got {spec!r}")
    if name not in SHIFTS:
        raise JtlError(f"unknown shift '{name}'. Known: {', '.join(sorted(SHIFTS))}")
    shift = SHIFTS[name]
    missing = shift.required - params.keys()
    unknown = params.keys() - shift.required - shift.optional
    if missing or unknown:
        allowed = ", ".join(sorted(shift.required | shift.optional)) or "none"
        raise JtlError(f"shift '{name}': missing {sorted(missing)}, unknown {sorted(unknown)}; "
                       f"its parameters are: {allowed}")
    return name, params


def apply_shifts(shifts: Sequence[Any], train: Split, val: Split, test: Split,
                 num_classes: int, seed: int) -> tuple[Split, Split, Split, int]:
    """Apply `shifts` in order; returns the new (train, val, test, num_classes)."""
    parsed = [parse_shift(s) for s in shifts]  # fail on a typo before any work
    splits = [train, val, test]
    for i, (name, params) in enumerate(parsed):
        shift = SHIFTS[name]
        for j in range(1 if shift.train_only else 3):
            # One stream per (seed, shift position, split): noise differs across splits.
            rng = np.random.default_rng([seed, i, j])
            splits[j] = shift.fn(splits[j], params, rng, num_classes)
    return splits[0], splits[1], splits[2], num_classes
