"""The domain contract every loader fulfils, and the one path from config to arrays.

A loader returns raw arrays (`RawData`); `build_domain` does everything common: checks on the
arrays (`_validate.py`), the held-out test split (deterministic when the data set has none),
the value range mapped to [0, 1], resizing to the model's input shape, class-balanced subsets,
the validation split used for honest model selection, and shift transforms.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.domains._validate import (
    check_arrays,
    check_class_count,
    check_labels,
    config_key,
    describe,
    to_unit,
)
from jtl.domains.pp import FIELD_GROUPS, INPUT_FIELDS, Pipeline, host_inputs
from jtl.errors import JtlError
from jtl.registry import Registry

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """One split of a domain: named fields (`jtl.domains.pp`), each (N, ...), as stored.

    `label` (N,) int32 always; one input field: `image` (N,H,W,C) uint8 (or float32 in [0, 1]
    when shifted or scaled from another range), `features` (N,D) float32, or `tokens` +
    `mask` (N,T) int32. `pp` is the model's evaluation pipeline: `x` is the split as the
    model reads it (computed on the host once, for measures and analysis); the trainer and the
    evaluation read `fields` and run `pp` on the device.
    """

    fields: Mapping[str, np.ndarray]
    pp: Pipeline | None = None

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, field: str = "image",
           pp: Pipeline | None = None) -> Split:
        return cls({field: x, "label": y}, pp)

    @property
    def y(self) -> np.ndarray:
        return self.fields["label"]

    @property
    def field(self) -> str:
        """The input field (the first of `pp.INPUT_FIELDS` present)."""
        return next(f for f in INPUT_FIELDS if f in self.fields)

    @property
    def stored(self) -> np.ndarray:
        """The input field as stored (e.g. uint8 images at their own size)."""
        return self.fields[self.field]

    @functools.cached_property
    def x(self) -> Any:
        """The model's input for the whole split (`pp` applied; without one: as stored)."""
        if self.pp is None:
            return self.stored
        return host_inputs(self.pp, {f: self.fields[f] for f in FIELD_GROUPS[self.pp.field]})

    def take(self, idx: np.ndarray) -> Split:
        return Split({k: v[idx] for k, v in self.fields.items()}, self.pp)

    def with_fields(self, **fields: np.ndarray) -> Split:
        return Split({**self.fields, **fields}, self.pp)

    def __len__(self) -> int:
        return len(self.y)


# How a domain's val split was made (`Domain.val_policy`, stated in summary.json).
VAL_FROM_TRAIN = "val_fraction of train"
VAL_FROM_BUDGET = "val_fraction of the per_class budget"
VAL_NONE = "none"


@dataclasses.dataclass(frozen=True)
class Domain:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    # VAL_FROM_TRAIN, VAL_FROM_BUDGET (per_class: val only from the k labeled examples per
    # class) or VAL_NONE (empty val: val_fraction 0, or a budget too small to spare any).
    val_policy: str = VAL_FROM_TRAIN
    # Which splits carry real labels: "all", "test" (unlabeled train data beside a labeled
    # test split) or "none". Without labels a split holds placeholder zeros that no loss may
    # read (the trainer refuses a method that would) and no accuracy is reported on.
    labels: str = "all"
    # The data set's class id of each label 0..num_classes-1: (5, 6, 7, 8, 9) after
    # `classes=[5,6,7,8,9]`, so two domains' label spaces can be compared after relabelling.
    # Empty: not known (a Domain built by hand).
    class_ids: tuple[int, ...] = ()
    # The name of each label 0..num_classes-1 where the data set has names (an image
    # folder's class folders); empty otherwise.
    class_names: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RawData:
    """What a loader returns: arrays as stored, (N, H, W) or (N, H, W, C), any numeric dtype."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    num_classes: int | None = None
    # (lo, hi) mapped onto [0, 1], when the loader knows it (e.g. (0, 16) for sklearn digits);
    # None: uint8 -> (0, 255), floats must lie in [0, 1], other dtypes need `value_range`.
    value_range: tuple[float, float] | None = None
    labels: str = "all"  # "all" | "test" | "none": see Domain.labels
    # What x is: "image" (N,H,W[,C]), "features" (N,D) float, or "tokens" (x a mapping of
    # `tokens` and `mask`, (N,T) int32 each).
    field: str = "image"
    class_names: tuple[str, ...] = ()  # see Domain.class_names
    # Without x_test: hold `test_fraction` of every class out (stratified), not of the whole.
    stratified: bool = False


@dataclasses.dataclass(frozen=True)
class LoadContext:
    """Where loaders find files: the offline data folder and TFDS's prepared-data folder."""

    data_dir: Path
    tfds_dir: Path


def load_context(paths: Mapping[str, Any]) -> LoadContext:
    """The folders of a config's `paths` (or $JTL_DATA_DIR / $JTL_TFDS_DIR, else
    ../shared/data beside the working dir or the project, and ~/.cache/jtl/tfds)."""
    data_dir = paths.get("data_dir") or os.environ.get("JTL_DATA_DIR")
    if not data_dir:
        candidates = [Path.cwd() / "../shared/data", PROJECT_ROOT / "../shared/data"]
        data_dir = next((c for c in candidates if c.is_dir()), candidates[-1])
    tfds_dir = paths.get("tfds_dir") or os.environ.get("JTL_TFDS_DIR") or (
        Path.home() / ".cache/jtl/tfds")
    return LoadContext(data_dir=Path(data_dir).resolve(), tfds_dir=Path(tfds_dir))


def locate(path: str, data_dir: Path | None) -> Path | None:
    """A user's file or folder, absolute: as given (absolute, or relative to the working
    directory), else under `data_dir` (None: not searched there); None when not found."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() or data_dir is None else [p, Path(data_dir) / p]
    found = next((c for c in candidates if c.exists()), None)
    return None if found is None else Path(os.path.abspath(found))


Loader = Callable[[Mapping[str, Any], LoadContext], RawData]
DOMAINS: Registry[Loader] = Registry("domain", "jtl.domains", "domain")

# Keys of a domain config that `build_domain` handles itself; the rest belong to the loader.
COMMON_KEYS = ("name", "shifts", "classes", "per_class", "max_train", "val_fraction",
               "test_fraction", "split_seed", "value_range")


def to_input_shape(x: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """(N,H,W[,C]) in [0,1] -> (N, *input_shape) float32, on the host: the step's own image ops
    (`jtl.domains.pp.image_to_model`: channel match, bilinear resize, clip), run eagerly."""
    import jax.numpy as jnp

    from jtl.domains.pp import image_to_model

    if x.ndim == 3:
        x = x[..., None]
    if len(x) == 0:
        return np.zeros((0, *input_shape), np.float32)
    return np.asarray(image_to_model(jnp.asarray(x, jnp.float32), input_shape), np.float32)


def _split_off(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices: a deterministic shuffle, then the last round(n * fraction) form the second part."""
    perm = np.random.default_rng(seed).permutation(n)
    n_second = round(n * fraction)
    return perm[: n - n_second], perm[n - n_second:]


def _split_per_class(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices: floor(fraction * n_c) of every class c to the second part, so a budget of k
    labeled examples per class gives val only when fraction * k >= 1 (none for 1-shot)."""
    rng = np.random.default_rng(seed)
    first, second = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_second = int(np.floor(fraction * len(idx) + 1e-9))
        first.append(idx[n_second:])
        second.append(idx[:n_second])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def class_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of `per_class` examples of every class present (all of a class if it has
    fewer: `build_domain` refuses that case first)."""
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(idx))


def check_classes(classes: Any, num_classes: int, where: str, role: str) -> list[int]:
    """`classes=[5,6,7,8,9]` as distinct class ids of the data set, in the order that gives
    their new labels 0..k-1."""
    key = config_key(role, "classes")
    if isinstance(classes, str | int) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in classes):
        raise JtlError(f"{where}: {key}={classes!r}: give a list of class ids, e.g. [0,1,2,3,4]")
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad or len(set(classes)) != len(classes) or len(classes) < 2:
        raise JtlError(f"{where}: {key}={classes}: need at least 2 distinct class ids in "
                       f"[0, {num_classes}); {bad or 'duplicates or too few'} are not")
    return classes


def select_classes(x: Any, y: np.ndarray, classes: list[int]) -> tuple[Any, np.ndarray]:
    """Every example of `classes`, labels relabelled to their position in `classes`."""
    relabel = np.full(int(max(y.max(initial=0), max(classes))) + 1, -1, np.int64)
    relabel[classes] = np.arange(len(classes))
    keep = np.isin(y, classes)
    return _rows(x, keep), relabel[y[keep]].astype(y.dtype)


def per_class_budget(value: Any) -> int | None:
    """`per_class`: k >= 1 labeled examples per class (`jtl.schema` checks it), or null / `all`
    for every example."""
    return None if value is None or value == "all" else int(value)


def check_budget(y: np.ndarray, per_class: int, class_ids: tuple[int, ...], where: str,
                 role: str) -> None:
    """`per_class=k` needs k training examples of every class: fewer would silently give
    the unbalanced whole of the smaller classes."""
    counts = np.bincount(y, minlength=len(class_ids))[: len(class_ids)]
    fewest = int(np.argmin(counts))
    if counts[fewest] < per_class:
        raise JtlError(f"{where}: {config_key(role, 'per_class')}={per_class}, but class "
                       f"{class_ids[fewest]} has only {int(counts[fewest])} training examples "
                       f"(the fewest, after the test hold-out); set per_class<="
                       f"{int(counts[fewest])}, or null for every example.")


def check_trainable_classes(y: np.ndarray, classes: list[int], where: str, role: str) -> None:
    """Every class of `classes=[...]` has a training example: a class without one is never
    learned, yet scored on the test split."""
    counts = np.bincount(y, minlength=len(classes))[: len(classes)]
    missing = [classes[i] for i in np.flatnonzero(counts == 0)]
    if missing:
        what = (f"class {missing[0]} has" if len(missing) == 1 else
                f"classes {missing} have")
        raise JtlError(f"{where}: {config_key(role, 'classes')}={classes}: {what} no training "
                       f"example (after the test hold-out); drop it from classes, or give it "
                       f"training examples.")


def _val_indices(y: np.ndarray, cfg: Mapping[str, Any], seed: int, where: str,
                 role: str, class_ids: tuple[int, ...] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, val) indices into the train split, and how val was made.

    With `per_class=k` the labeled budget is drawn first and val is carved out of it, so a
    k-shot run reads k labels per class in all, never a val set from the rest of the data.
    `class_ids` (the class id of each label) checks that the budget exists; None: unchecked
    (placeholder labels of an unlabeled split).
    """
    val_fraction = float(cfg.get("val_fraction", 0.1))
    per_class = per_class_budget(cfg.get("per_class"))
    if per_class is None:
        train, val = _split_off(len(y), val_fraction, seed + 1)
        return train, val, VAL_FROM_TRAIN if len(val) else VAL_NONE
    if class_ids is not None:
        check_budget(y, per_class, class_ids, where, role)
    budget = class_subset(y, per_class, seed + 2)
    train, val = _split_per_class(y[budget], val_fraction, seed + 1)
    return budget[train], budget[val], VAL_FROM_BUDGET if len(val) else VAL_NONE


def store(x: np.ndarray, rng: tuple[float, float], field: str,
          input_shape: tuple[int, int, int], resize: bool = False) -> np.ndarray:
    """An input field as a split keeps it. uint8 images of range [0, 255] as they are, at their
    own size (the step scales and resizes them: `jtl.domains.pp`; 4x less memory than float32);
    other images are float32 either way, so they are scaled to [0, 1] and resized to the
    model's `input_shape` once, here (as before the pipeline: no resize in every step);
    features as float32. `resize`: uint8 images too (a shifted domain: shifts work on the
    model's images)."""
    if field == "features":
        return x.astype(np.float32)
    if field == "tokens":
        return x
    x = x[..., None] if x.ndim == 3 else x
    if x.dtype == np.uint8 and tuple(rng) == (0.0, 255.0) and not resize:
        return x
    return to_input_shape(to_unit(x, rng), input_shape)


def build_domain(
    cfg: Mapping[str, Any],
    input_shape: tuple[int, int, int],
    ctx: LoadContext,
    role: str = "",
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    augment: tuple[str, ...] = (),
    preprocess: Mapping[str, Any] | None = None,
) -> Domain:
    """Load a domain by its config (`conf/domain/<name>.yaml`); its splits carry the model's
    pipeline (`input_shape`, the model's `normalize` constants, the run's `augment` and
    `preprocess`: `jtl.domains.pp.check_pp`'s resize and evaluation ops).

    `role` ("source"/"target") only names the domain in error messages.
    """
    from jtl import schema
    from jtl.domains.shifts import apply_shifts

    schema.validate_domain(cfg, role)  # every key's type and range, before any file is read
    name = cfg["name"]
    where = describe(cfg, role)
    loader = DOMAINS.get(name)
    try:
        raw = loader({k: v for k, v in cfg.items() if k not in COMMON_KEYS}, ctx)
    except JtlError as e:
        raise JtlError(f"{describe({'name': name}, role)}: {e}") from e
    field = raw.field
    arrays = [("train", _asarray(raw.x_train), np.asarray(raw.y_train))]
    if raw.x_test is not None:
        arrays.append(("test", _asarray(raw.x_test), np.asarray(raw.y_test)))
    ranges = check_arrays(arrays, raw.value_range, cfg.get("value_range"), role, where, field)
    num_classes = raw.num_classes or int(max(y.max() for _, _, y in arrays) + 1)
    if not raw.num_classes:
        check_class_count(arrays, num_classes, role, where)
    fix = (f"Fix the labels, or set `{config_key(role, 'num_classes')}` to cover them."
           if "num_classes" in cfg else "Fix the labels.")
    for split, _, y in arrays:
        check_labels(y, split, num_classes, where, fix)

    split_seed = int(cfg.get("split_seed", 0))
    (_, x_tr, y_tr), rng_tr = arrays[0], ranges[0]
    if raw.x_test is None:  # hold out test_fraction, deterministically
        fraction = float(cfg.get("test_fraction", 0.2))
        keep, held = (_split_per_class(y_tr, fraction, split_seed) if raw.stratified else
                      _split_off(len(y_tr), fraction, split_seed))
        x_te, y_te, rng_te = _rows(x_tr, held), y_tr[held], rng_tr
        x_tr, y_tr = _rows(x_tr, keep), y_tr[keep]
        if not len(y_te):
            raise JtlError(f"{where}: test_fraction leaves an empty test split; raise it.")
    else:
        (_, x_te, y_te), rng_te = arrays[1], ranges[1]
    class_ids, class_names = tuple(range(num_classes)), raw.class_names
    if cfg.get("classes") is not None:  # after the test hold-out, so the test split keeps
        classes = check_classes(cfg["classes"], num_classes, where, role)  # all of theirs
        (x_tr, y_tr), (x_te, y_te) = (select_classes(x_tr, y_tr, classes),
                                      select_classes(x_te, y_te, classes))
        if raw.labels == "all":
            check_trainable_classes(y_tr, classes, where, role)
        num_classes, class_ids = len(classes), tuple(classes)
        class_names = tuple(class_names[c] for c in classes) if class_names else ()
    tr, va, val_policy = _val_indices(y_tr, cfg, split_seed, where, role,
                                      class_ids if raw.labels == "all" else None)
    shifts = cfg.get("shifts") or []
    if shifts and field != "image":
        raise JtlError(f"{where}: shifts transform images; this domain's input is {field}")

    def make(x: Any, y: np.ndarray, rng: tuple[float, float]) -> Split:
        """Stored only after subsetting: a 10-shot split keeps 100 images."""
        if isinstance(x, Mapping):
            return Split({**{k: np.asarray(v) for k, v in x.items()}, "label": y.astype(np.int32)})
        return Split.of(store(x, rng, field, input_shape, bool(shifts)), y.astype(np.int32),
                        field)

    train = make(_rows(x_tr, tr), y_tr[tr], rng_tr)
    val, test = make(_rows(x_tr, va), y_tr[va], rng_tr), make(x_te, y_te, rng_te)
    train, val, test, num_classes = apply_shifts(shifts, train, val, test, num_classes,
                                                 seed=split_seed)
    if cfg.get("max_train") is not None:
        train = train.take(np.arange(min(int(cfg["max_train"]), len(train))))
    if len(train) == 0:
        raise JtlError(f"{where}: the train split is empty after subsetting (per_class, "
                       f"max_train, val_fraction); keep more examples.")
    pp = Pipeline(field=field, shape=tuple(input_shape) if field == "image" else None,
                  mean=None if normalize is None else tuple(normalize[0]),
                  std=None if normalize is None else tuple(normalize[1]), augment=augment,
                  **(preprocess or {}))
    train, val, test = (Split(s.fields, pp) for s in (train, val, test))
    return Domain(name=name, train=train, val=val, test=test, num_classes=num_classes,
                  val_policy=val_policy, labels=raw.labels, class_ids=class_ids,
                  class_names=class_names)


def _asarray(x: Any) -> Any:
    """A loader's x: one array, or a mapping of arrays (tokens and mask)."""
    return {k: np.asarray(v) for k, v in x.items()} if isinstance(x, Mapping) else np.asarray(x)


def _rows(x: Any, idx: np.ndarray) -> Any:
    return {k: v[idx] for k, v in x.items()} if isinstance(x, Mapping) else x[idx]
