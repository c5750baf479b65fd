"""The domain contract every loader fulfils, and the one path from config to arrays.

A loader returns raw arrays (`RawData`); `build_domain` does everything common: the held-out
test split (deterministic when the data set has none), resizing to the model's input shape,
shift transforms, class-balanced subsets and the source-validation split used for honest
model selection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.errors import JtlError
from jtl.registry import Registry


@dataclasses.dataclass(frozen=True)
class Split:
    """Images (N, H, W, C) float32 in [0, 1] and integer labels (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass(frozen=True)
class Domain:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int


@dataclasses.dataclass(frozen=True)
class RawData:
    """What a loader returns: arrays as stored, (N, H, W) or (N, H, W, C), any numeric dtype."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    num_classes: int | None = None
    # Value that maps to 1.0 when scaling to [0, 1] (255 for uint8 images); None: infer.
    max_value: float | None = None


@dataclasses.dataclass(frozen=True)
class LoadContext:
    """Where loaders find files: the offline data folder and TFDS's prepared-data folder."""

    data_dir: Path
    tfds_dir: Path


Loader = Callable[[Mapping[str, Any], LoadContext], RawData]
DOMAINS: Registry[Loader] = Registry("domain", "jtl.domains", "domain")

# Keys of a domain config that `build_domain` handles itself; the rest belong to the loader.
COMMON_KEYS = ("name", "shifts", "per_class", "max_train", "val_fraction", "test_fraction",
               "split_seed")


def _scale(x: np.ndarray, max_value: float | None) -> np.ndarray:
    x = x.astype(np.float32)
    if max_value is None:
        max_value = 255.0 if x.max(initial=0.0) > 1.0 else 1.0
    return x / np.float32(max_value)


def to_input_shape(x: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """(N,H,W[,C]) in [0,1] -> (N, *input_shape): bilinear resize and channel match."""
    import jax
    import jax.numpy as jnp

    if x.ndim == 3:
        x = x[..., None]
    h, w, c = input_shape
    if x.shape[-1] != c:
        if x.shape[-1] == 1:
            x = np.repeat(x, c, axis=-1)
        elif c == 1:
            x = x.mean(axis=-1, keepdims=True)
        else:
            raise JtlError(f"cannot map {x.shape[-1]} channels to the model's {c}")
    if x.shape[1:3] != (h, w):
        x = np.asarray(jax.image.resize(jnp.asarray(x), (x.shape[0], h, w, c), "bilinear"))
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _split_off(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Deterministic shuffle, then the last `fraction` goes to the second part."""
    perm = np.random.default_rng(seed).permutation(len(y))
    n_second = round(len(y) * fraction)
    first, second = perm[: len(y) - n_second], perm[len(y) - n_second:]
    return x[first], y[first], x[second], y[second]


def class_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of `per_class` examples of every class (all of a class if it has fewer)."""
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(idx))


def build_domain(
    cfg: Mapping[str, Any],
    input_shape: tuple[int, int, int],
    ctx: LoadContext,
) -> Domain:
    """Load a domain by its config (`conf/domain/<name>.yaml`) and shape it for the model."""
    from jtl.domains.shifts import apply_shifts

    name = cfg["name"]
    loader = DOMAINS.get(name)
    raw = loader({k: v for k, v in cfg.items() if k not in COMMON_KEYS}, ctx)
    split_seed = int(cfg.get("split_seed", 0))
    x_tr, y_tr = raw.x_train, np.asarray(raw.y_train)
    if raw.x_test is None:
        x_tr, y_tr, x_te, y_te = _split_off(x_tr, y_tr, float(cfg.get("test_fraction", 0.2)),
                                            split_seed)
    else:
        x_te, y_te = raw.x_test, np.asarray(raw.y_test)
    num_classes = raw.num_classes or int(max(y_tr.max(), y_te.max()) + 1)
    x_tr = to_input_shape(_scale(x_tr, raw.max_value), input_shape)
    x_te = to_input_shape(_scale(x_te, raw.max_value), input_shape)
    y_tr, y_te = y_tr.astype(np.int32), y_te.astype(np.int32)

    val_fraction = float(cfg.get("val_fraction", 0.1))
    x_tr, y_tr, x_va, y_va = _split_off(x_tr, y_tr, val_fraction, split_seed + 1)
    train, val, test = Split(x_tr, y_tr), Split(x_va, y_va), Split(x_te, y_te)
    train, val, test, num_classes = apply_shifts(cfg.get("shifts") or [], train, val, test,
                                                 num_classes, seed=split_seed)
    if cfg.get("per_class") is not None:
        keep = class_subset(train.y, int(cfg["per_class"]), split_seed + 2)
        train = Split(train.x[keep], train.y[keep])
    if cfg.get("max_train") is not None:
        train = Split(train.x[: int(cfg["max_train"])], train.y[: int(cfg["max_train"])])
    if len(train) == 0:
        raise JtlError(f"domain '{name}' has an empty train split after subsetting")
    return Domain(name=name, train=train, val=val, test=test, num_classes=num_classes)
