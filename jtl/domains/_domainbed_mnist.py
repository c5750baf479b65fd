"""DomainBed's ColoredMNIST and RotatedMNIST environments, built as DomainBed builds them: the
code both domains share (`colored_mnist.py`, `rotated_mnist.py` register them).

DomainBed (`domainbed/datasets.py`, `MultipleEnvironmentMNIST`) concatenates MNIST's 60,000
train and 10,000 test images (70,000, file order), shuffles them once with
`torch.randperm(70000)` and deals them to the environments in turn: environment i is
`images[i::n_envs]`. Then, per environment in order:

- `colored_mnist` (environments `+90%`, `+80%`, `-90%`; colour flipped with probability
  e = 0.1, 0.2, 0.9): label = digit < 5, flipped where `torch.rand(n) < 0.25`; colour = label,
  flipped where `torch.rand(n) < e`; the image goes to channel `colour` of a 2-channel image,
  the other channel is zero. So P(colour == label) = 1 - e, P(label == [digit < 5]) = 0.75.
- `rotated_mnist` (environments `0`, `15`, ..., `75`): every image rotated by that many degrees
  counter-clockwise about its centre, 10 digit classes. DomainBed's torchvision `rotate` on a
  PIL image is PIL's `Image.rotate(angle, resample, fillcolor=0)`, which this module calls
  directly: the same pixels (PIL's arithmetic, of whatever Pillow version is installed).

Its random draws come from torch's global CPU generator after `torch.manual_seed(seed)`
(`domainbed/scripts/train.py`; `seed` defaults to 0 there, DomainBed's sweeps pass a hash of
the run's arguments). That generator is MT19937 seeded by `init_genrand(seed)`, the same
stream as numpy's legacy `RandomState(seed)`; `TorchCpuStream` replays it with torch's own
consumers (`randperm`: for i < n-1 swap r[i] with r[i + u32 % (n - i)]; `rand`: float32
(u32 & 0xFFFFFF) / 2**24), so the environments are DomainBed's, draw for draw, with no torch
dependency (checked against torch 2.13's CPU generator). Images are stored as uint8 (N, H, W, C)
and scaled by `build_domain` to x / 255 in float32, DomainBed's `float().div_(255)` and
`ToTensor()`; channel c of jtl's NHWC image is DomainBed's channel c of its (2, 28, 28).

The file order holds for the offline IDX files (`backend: offline`, or `auto` with them
present); TFDS's catalog `mnist` stores its records in another order, so with `backend: tfds`
the environments are DomainBed-like but not DomainBed's.

Splits: DomainBed has no test split per environment; it holds out `holdout_fraction` (0.2) of
every environment (the "out" split, by `np.random.RandomState(seed_hash(trial_seed, env_i))`)
and trains on the other 80% ("in"). These domains return no x_test, so `build_domain` holds out
`test_fraction` (0.2 in the yamls) as the test split (its own deterministic shuffle by
`split_seed`, round() not int(): the held-out indices are not DomainBed's), then `val_fraction`
of the rest as val. So jtl's test split plays DomainBed's "out" split, its train + val split
DomainBed's "in" split. (DomainBed reports a test environment's accuracy on its "in" split and
uses the "out" split for oracle selection; the multi-domain setting will map that.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jtl.domains.base import LoadContext
from jtl.errors import JtlError

COLORED_ENVIRONMENTS = ("+90%", "+80%", "-90%")
COLOR_FLIP = (0.1, 0.2, 0.9)  # P(colour != label) per environment
LABEL_FLIP = 0.25
ROTATED_ENVIRONMENTS = ("0", "15", "30", "45", "60", "75")
ANGLES = (0, 15, 30, 45, 60, 75)
INTERPOLATIONS = ("bicubic", "bilinear")
SEED_LIMIT = 2**32  # init_genrand takes 32 bits; DomainBed's seeds are < 2**31


def seed_hash(*args: Any) -> int:
    """DomainBed's `misc.seed_hash`: an md5 of `str(args)` mod 2**31, the seed its sweeps give
    each run (`seed_hash(dataset, algorithm, test_envs, hparams_seed, trial_seed)`)."""
    return int(hashlib.md5(str(args).encode("utf-8")).hexdigest(), 16) % (2**31)


class TorchCpuStream:
    """torch's CPU generator after `torch.manual_seed(seed)`, for `randperm` and `rand`.

    Both draw 32-bit MT19937 outputs one per value, in order, so a stream is a position in one
    sequence: `skip(n)` passes over draws whose values are not needed.
    """

    def __init__(self, seed: int) -> None:
        self._rs = np.random.RandomState(seed)  # legacy seeding of an int: init_genrand

    def raw(self, n: int) -> np.ndarray:
        """The next n 32-bit outputs (randint over the full range returns them unmasked)."""
        return self._rs.randint(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)

    def skip(self, n: int) -> None:
        self.raw(n)

    def randperm(self, n: int) -> np.ndarray:
        """`torch.randperm(n)` (CPU, n < 2**32 / 20): a forward Fisher-Yates shuffle."""
        z = (self.raw(n - 1).astype(np.int64) % (n - np.arange(n - 1))).tolist()
        r = list(range(n))
        for i, k in enumerate(z):
            r[i], r[i + k] = r[i + k], r[i]
        return np.asarray(r, np.int64)

    def rand(self, n: int) -> np.ndarray:
        """`torch.rand(n)` (CPU float32): the low 24 bits of each output over 2**24."""
        return ((self.raw(n) & 0xFFFFFF).astype(np.float64) / 2**24).astype(np.float32)


def deal(x: np.ndarray, y: np.ndarray, n_envs: int, stream: TorchCpuStream
         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The shuffle and deal of `MultipleEnvironmentMNIST`: environment i gets `[i::n_envs]`."""
    perm = stream.randperm(len(y))
    x, y = x[perm], y[perm]
    return [(x[i::n_envs], y[i::n_envs]) for i in range(n_envs)]


def color(images: np.ndarray, digits: np.ndarray, flip: float, stream: TorchCpuStream
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`ColoredMNIST.color_dataset`: (images (n, 28, 28, 2) uint8, labels, colours)."""
    n = len(digits)
    labels = (digits < 5).astype(np.int64)
    labels ^= (stream.rand(n) < np.float32(LABEL_FLIP)).astype(np.int64)
    colors = labels ^ (stream.rand(n) < np.float32(flip)).astype(np.int64)
    out = np.zeros((*images.shape[:3], 2), np.uint8)
    out[np.arange(n), :, :, colors] = images.reshape(n, *images.shape[1:3])
    return out, labels, colors


def rotate(images: np.ndarray, angle: float, interpolation: str = "bicubic") -> np.ndarray:
    """(n, H, W) uint8 rotated `angle` degrees counter-clockwise about the centre, zeros
    outside: PIL's `Image.rotate`, which torchvision's `rotate` calls on DomainBed's images."""
    from PIL import Image

    resample = {"bicubic": Image.Resampling.BICUBIC,
                "bilinear": Image.Resampling.BILINEAR}[interpolation]
    if angle == 0:
        return images.copy()  # PIL copies the image unchanged at 0 degrees too
    return np.stack([np.asarray(Image.fromarray(im).rotate(angle, resample,
                                                                      fillcolor=0))
                     for im in images])


def pick_env(env: Any, names: Sequence[str], numeric_names: bool = False) -> int:
    """`env` as an index into `names`: an index, or a name (`+90%`, `'15'`); with
    `numeric_names` an integer that is no index but a name (15 for '15') is that name (0 is
    both index 0 and name '0': the same environment)."""
    n = len(names)
    listed = ", ".join(repr(s) for s in names)
    if isinstance(env, bool) or not isinstance(env, int | str):
        raise JtlError(f"env={env!r}: give an index 0..{n - 1} or a name ({listed})")
    if isinstance(env, int):
        if 0 <= env < n:
            return env
        if numeric_names and str(env) in names:
            return names.index(str(env))
        raise JtlError(f"env={env}: there are {n} environments; give an index "
                       f"0..{n - 1} or a name ({listed})")
    if env in names:
        return names.index(env)
    raise JtlError(f"env={env!r} is no environment; give an index 0..{n - 1} or a "
                   f"name ({listed})")


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise JtlError(f"seed={seed!r}: an integer in [0, 2**32) (DomainBed's "
                       f"--seed: torch.manual_seed before the environments are built)")
    return seed


def mnist_70k(cfg: Mapping[str, Any], ctx: LoadContext) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's train then test images (70,000, (N, 28, 28) uint8) and digits, through the
    `mnist` domain's loader (its sha256 checks, its cached preparation, its backends)."""
    from jtl.domains import mnist

    raw = mnist.load({"backend": cfg.get("backend") or "auto"}, ctx)
    x = np.concatenate([raw.x_train, raw.x_test])
    y = np.concatenate([raw.y_train, raw.y_test]).astype(np.int64)
    return x.reshape(len(x), 28, 28), y


def colored_environments(x: np.ndarray, y: np.ndarray, seed: int = 0,
                         only: int | None = None) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """DomainBed's three ColoredMNIST environments from the 70,000 (images, digits):
    (images (n, 28, 28, 2) uint8, binary labels) each; with `only`, just that one (the others'
    draws are skipped, so it is the same environment) and None for the rest."""
    stream = TorchCpuStream(seed)
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for i, ((xi, yi), flip) in enumerate(zip(deal(x, y, 3, stream), COLOR_FLIP, strict=True)):
        if only is None or i == only:
            images, labels, _ = color(xi, yi, flip, stream)
            out.append((images, labels))
        else:
            stream.skip(2 * len(yi))  # the label and the colour draws
            out.append(None)
    return out


def rotated_environments(x: np.ndarray, y: np.ndarray, seed: int = 0,
                         only: int | None = None, interpolation: str = "bicubic"
                         ) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """DomainBed's six RotatedMNIST environments: (images (n, 28, 28, 1) uint8, digits) each;
    with `only`, just that one (None for the rest)."""
    envs = deal(x, y, len(ANGLES), TorchCpuStream(seed))
    return [(rotate(xi, angle, interpolation)[..., None], yi)
            if only is None or i == only else None
            for i, ((xi, yi), angle) in enumerate(zip(envs, ANGLES, strict=True))]
