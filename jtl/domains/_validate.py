"""Checks on a loader's raw arrays, so bad input stops the run instead of training on garbage.

Every check raises a one-line `JtlError` that names the domain (and its role, file or data set)
and says what to change. Values are mapped to [0, 1] from a range that is stated (the
`value_range` key, or the loader's own declaration) or unambiguous (uint8 -> [0, 255], floats
already in [0, 1]); nothing is guessed from the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jtl.errors import JtlError

ValueRange = tuple[float, float]
# The most classes an inferred class count may have (a stated `num_classes` may have as many).
MAX_CLASSES = 100_000


def describe(cfg: Mapping[str, Any], role: str = "") -> str:
    """'target domain 'npz' (/data/mine.npz)': how error messages name a domain."""
    head = f"{role} domain '{cfg.get('name')}'" if role else f"domain '{cfg.get('name')}'"
    detail = cfg.get("path") or cfg.get("dataset")
    return f"{head} ({detail})" if detail else head


def config_key(role: str, key: str) -> str:
    """The override a user types to set `key` of this domain."""
    return f"{role or '<source|target>'}.{key}"


def check_split(x: Any, y: np.ndarray, split: str, where: str, field: str = "image") -> None:
    """Shapes and label type of one split, before any value is looked at."""
    if isinstance(x, Mapping):  # tokens and mask
        missing = [k for k in ("tokens", "mask") if k not in x]
        if missing or any(np.asarray(v).ndim != 2 or len(v) != len(y) for v in x.values()):
            raise JtlError(f"{where}: {split} text must be `tokens` and `mask`, (N, T) each, "
                           f"one row per label")
        x = x["tokens"]
    if len(x) != len(y):
        raise JtlError(f"{where}: the {split} split has {len(x)} images but {len(y)} labels; "
                       f"give exactly one label per image.")
    if len(y) == 0:
        raise JtlError(f"{where}: the {split} split is empty; give it examples (an npz file "
                       f"without x_test/y_test gets test_fraction of x as its test split).")
    if field == "features" and x.ndim != 2:
        raise JtlError(f"{where}: {split} features must be (N, D), got shape {x.shape}.")
    if field == "image" and x.ndim not in (3, 4):
        raise JtlError(f"{where}: {split} images must be (N,H,W) or (N,H,W,C), got shape "
                       f"{x.shape}.")
    if y.ndim != 1:
        raise JtlError(f"{where}: {split} labels have shape {y.shape}; give one integer class "
                       f"id per example, shape ({len(y)},). {_label_shape_hint(y)}")
    if not np.issubdtype(y.dtype, np.integer):
        raise JtlError(f"{where}: {split} labels are {y.dtype}; labels must be integer class "
                       f"ids 0..K-1.")


def _label_shape_hint(y: np.ndarray) -> str:
    """How to turn a (N, 1) column or a one-hot (N, C) matrix into class ids."""
    if y.ndim == 2 and y.shape[1] == 1:
        return "Flatten them before saving: y.reshape(-1)."
    if (y.ndim == 2 and np.issubdtype(y.dtype, np.number) and np.isin(y, (0, 1)).all()
            and (y.sum(axis=1) == 1).all()):
        return "They look one-hot: save y.argmax(axis=1)."
    return "Save the class ids as a 1-D integer array."


def check_class_count(arrays: Sequence[tuple[str, np.ndarray, np.ndarray]], num_classes: int,
                      role: str, where: str) -> None:
    """An inferred class count (max label + 1) must be plausible: at most MAX_CLASSES and at
    most half the examples. Sample ids saved as labels fail here, not in a head of 10**12
    outputs."""
    n = sum(len(y) for _, _, y in arrays)
    if num_classes > MAX_CLASSES or num_classes > n / 2:
        distinct = len(np.unique(np.concatenate([y for _, _, y in arrays])))
        bound = (f"more than {MAX_CLASSES:,} classes" if num_classes > MAX_CLASSES else
                 f"more classes than half the {n} examples")
        raise JtlError(f"{where}: the labels look like sample ids, not class ids: "
                       f"{distinct} distinct values up to {num_classes - 1} mean "
                       f"num_classes={num_classes}, {bound}. Save class ids 0..K-1 as the "
                       f"labels, or state `{config_key(role, 'num_classes')}` if these are "
                       f"the classes.")


def check_labels(y: np.ndarray, split: str, num_classes: int, where: str, fix: str) -> None:
    """Every label a class id in [0, num_classes)."""
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        values = sorted({int(v) for v in y[bad]})[:5]
        raise JtlError(f"{where}: {int(bad.sum())} {split} labels lie outside [0, num_classes="
                       f"{num_classes}) (e.g. {values}); labels must be class ids 0.."
                       f"{num_classes - 1}. {fix}")


def parse_range(stated: Any, key: str, where: str) -> ValueRange | None:
    """A user's `value_range` ([lo, hi], hi > lo, finite) -> a tuple; None stays None."""
    if stated is None:
        return None
    try:
        lo, hi = (float(v) for v in stated)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise JtlError(f"{where}: `{key}` must be two finite numbers [lo, hi] with hi > lo, "
                       f"got {stated!r}.")
    return lo, hi


def value_range(dtype: np.dtype, declared: ValueRange | None, key: str, where: str) -> ValueRange:
    """The range mapped onto [0, 1]: the declared one, else the one the dtype leaves no doubt
    about (uint8 -> [0, 255], bool and floats -> [0, 1]); other integers must be stated."""
    if declared is not None:
        return declared
    if dtype == np.uint8:
        return 0.0, 255.0
    if dtype == np.bool_ or np.issubdtype(dtype, np.floating):
        return 0.0, 1.0
    raise JtlError(f"{where}: images are {dtype}, whose value range is ambiguous; state it with "
                   f"`{key}=[lo,hi]` (e.g. [0,65535] for 16-bit images, [0,255] for 8-bit "
                   f"values stored as {dtype}).")


def check_values(x: np.ndarray, split: str, rng: ValueRange, stated: bool, key: str,
                 where: str) -> None:
    """Finite values inside `rng` (a float tolerance of 1e-6 of its width)."""
    if not np.issubdtype(x.dtype, np.number):
        raise JtlError(f"{where}: {split} images are {x.dtype}; give numeric arrays.")
    if np.issubdtype(x.dtype, np.inexact):
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        if n_nan or n_inf:
            raise JtlError(f"{where}: the {split} split's images hold {n_nan} NaN and {n_inf} "
                           f"inf values; replace them (e.g. np.nan_to_num) or drop those "
                           f"images.")
    lo, hi = rng
    if x.dtype == np.uint8 and lo <= 0 and hi >= 255:
        return  # cannot lie outside
    tol = 1e-6 * (hi - lo)
    low, high = x < lo - tol, x > hi + tol
    if low.any() or high.any():
        bounds = f"[{lo:g}, {hi:g}]"
        lead = (f"{where}: {int(low.sum() + high.sum())} value(s) of the {split} images lie "
                f"outside {bounds} (min {x.min():g}, max {x.max():g}); ")
        if stated:
            raise JtlError(lead + f"fix the data or widen `{key}`.")
        raise JtlError(lead + f"{x.dtype} images must lie in {bounds} unless their range is "
                       f"stated: fix the data, or set `{key}=[lo,hi]` if that is their range.")


def check_float32(rng: ValueRange, key: str, where: str) -> None:
    """Images are scaled in float32: the range and its width must be float32 numbers, or
    every image becomes 0 (a width past 3.4e38) or NaN (a width under 1.2e-38)."""
    lo, hi = rng
    biggest, tiniest = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)
    if not (max(abs(lo), abs(hi)) <= biggest and tiniest <= hi - lo <= biggest):
        raise JtlError(f"{where}: `{key}`=[{lo:g}, {hi:g}] does not fit float32, in which "
                       f"images are scaled (|lo|, |hi| and hi - lo at most {biggest:.3g}, "
                       f"hi - lo at least {tiniest:.3g}); rescale the data or state a range "
                       f"within these bounds.")


def to_unit(x: np.ndarray, rng: ValueRange) -> np.ndarray:
    """[lo, hi] -> [0, 1] in float32 (exactly x / 255 for uint8)."""
    lo, hi = rng
    out = x.astype(np.float32)
    if lo:
        out = out - np.float32(lo)
    return out / np.float32(hi - lo)


def check_arrays(arrays: Sequence[tuple[str, Any, np.ndarray]],
                 declared: ValueRange | None, stated: Any, role: str,
                 where: str, field: str = "image") -> list[ValueRange]:
    """Split checks and the value range of each (split, x, y); returns the ranges to scale by
    (images only: features are used as they are, finite; tokens are ids)."""
    key = config_key(role, "value_range")
    user = parse_range(stated, key, where)
    ranges = []
    for split, x, y in arrays:
        check_split(x, y, split, where, field)
        if field != "image":
            if field == "features" and not np.isfinite(x).all():
                raise JtlError(f"{where}: the {split} features hold NaN or inf values; "
                               "replace them (e.g. np.nan_to_num) or drop those rows.")
            ranges.append((0.0, 1.0))
            continue
        rng = value_range(x.dtype, user or declared, key, where)
        check_float32(rng, key, where)
        check_values(x, split, rng, user is not None, key, where)
        ranges.append(rng)
    return ranges
