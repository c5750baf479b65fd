"""The typed schema of every config group: one source of truth for keys, types and ranges.

Each group option has a schema, a dataclass whose fields are the option's keys with their
types (`int`, `float`, `bool`, `str`, `Literal[...]` for a choice, `list[...]`, `X | None`) and,
where a value has a valid range, bounds in the field's metadata (`bound(gt=0)`). Where the
option's own code already declares its keys, the schema is read from there, so adding a method,
model or measure stays a file plus a yaml:

- `method`: the method's frozen dataclass (`jtl/methods/<name>.py`), its fields' type hints;
- `model`: the backbone's constructor signature (`jtl/models/<name>.py`);
- measures: the measure function's keyword options (`jtl/measures/<name>.py`);
- `transfer`: `jtl.transfer.recipes.Recipe`;
- the root keys, `paths`, `trainer`, `optim`, `neck`, `pp`, the domains' keys and shift
  parameters: the dataclasses below.

`validate(cfg)` checks a composed config against it before anything else happens (no data
loaded, no device touched): a wrong type, a value out of range or an unknown key is one
`JtlError` naming the key, the value and what it takes. `jtl.train` and `jtl.measure` call it
first; `tests/test_schema.py` composes every option and experiment and feeds a wrong-typed value
to every key.

Why validation and not Hydra's structured-config merge: merging a schema coerces values
(`weight: 1` becomes `1.0`, a new schema default adds a key), which would change the saved
config and so the identity of every existing run dir; OmegaConf 2.3 also cannot type a union
such as `per_class: int | "all" | null`. Checking leaves the config exactly as composed.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from jtl.errors import JtlError

# Seeds become jax keys (int32 without x64) and scikit-learn random states (< 2**32), and jtl
# adds offsets to them (a transfer run's new head: seed + 1,000,003): 2**30 leaves room.
SEED_MAX = 2**30
# The step counter is an int32 on device.
STEPS_MAX = 2**31 - 1
# Boundaries (log/eval/checkpoint steps) one run may have: each is a host round trip and a row.
MAX_BOUNDARIES = 10**6


def bound(*, gt: float | None = None, ge: float | None = None, lt: float | None = None,
          le: float | None = None, finite: bool = True, **kw: Any) -> Any:
    """A dataclass field with a numeric range (applies to every number in a list value)."""
    meta = {k: v for k, v in dict(gt=gt, ge=ge, lt=lt, le=le).items() if v is not None}
    return dataclasses.field(metadata={"bounds": meta, "finite": finite}, **kw)


# ---------------------------------------------------------------------------------------------
# Schemas written here (the other groups' schemas come from their code)


@dataclasses.dataclass
class Paths:
    data_dir: str | None = None
    tfds_dir: str | None = None
    pretrain_dir: str | None = None


@dataclasses.dataclass
class Trainer:
    steps: int = bound(ge=1, le=STEPS_MAX, default=1500)
    batch_size: int = bound(ge=1, le=2**24, default=64)
    batch_over_split: Literal["error", "resample"] = "error"
    eval_every: int = bound(ge=1, default=500)
    log_every: int = bound(ge=1, default=100)
    checkpoint_every: int = bound(ge=1, default=500)
    keep_checkpoints: int = bound(ge=1, default=2)
    steps_per_call: int | Literal["auto"] = bound(ge=1, default="auto")
    seeds: list[int] | None = bound(ge=0, le=SEED_MAX, default=None)
    # Set by trainer.seeds on each seed's run where the program's width changes its numbers
    # (jtl.train.trainer.lanes_change_results); never set by hand.
    lanes: int | None = bound(ge=2, default=None)
    # A random hyper-parameter search vmapped in one program (jtl.train.search.Search).
    search: dict | None = None
    mesh: int | Literal["auto"] | None = bound(ge=1, default="auto")
    data_on_device: bool | Literal["auto"] = "auto"
    progress: bool = True
    max_loss: float | None = bound(gt=0, default=1.0e6)
    tensorboard: bool = True
    # A frozen backbone's features computed once and cached (jtl.train.features).
    feature_cache: bool | Literal["auto"] = "auto"


@dataclasses.dataclass
class Adam:
    name: str = "adam"
    lr: float = bound(gt=0, default=1e-3)
    b1: float = bound(ge=0, lt=1, default=0.9)
    weight_decay: float = bound(ge=0, default=0.0)
    schedule: Literal["constant", "cosine", "dann"] = "constant"
    warmup: int = bound(ge=0, default=0)
    clip_norm: float | None = bound(gt=0, default=None)


@dataclasses.dataclass
class Sgd:
    name: str = "sgd"
    lr: float = bound(gt=0, default=0.01)
    momentum: float | None = bound(ge=0, lt=1, default=0.9)
    nesterov: bool = True
    weight_decay: float = bound(ge=0, default=5e-4)
    schedule: Literal["constant", "cosine", "dann"] = "dann"
    warmup: int = bound(ge=0, default=0)
    clip_norm: float | None = bound(gt=0, default=None)


OPTIMIZERS: dict[str, type] = {"adam": Adam, "sgd": Sgd}


@dataclasses.dataclass
class Preprocess:
    """`pp:` the image pipeline's resize and evaluation ops (conf/pp/, `jtl.domains.pp`);
    null: images straight to the model's size. Training's ops are the root `augment`."""

    resize: int | None = bound(ge=1, le=1 << 16, default=None)
    eval_ops: list[str] | None = None


@dataclasses.dataclass
class Neck:
    """`neck:` between backbone and head (conf/neck/, `jtl.models.base.Neck`); null: none."""

    bottleneck_dim: int | None = bound(ge=1, le=1 << 20, default=None)
    pool: Literal["mean"] | None = None


@dataclasses.dataclass
class Online:
    """`online:` a test-time stream (conf/online/, `jtl.train.online`); null: none."""

    split: Literal["train", "val", "test"] = "test"
    order: int | None = bound(ge=0, le=SEED_MAX, default=None)
    episodic: bool = False


@dataclasses.dataclass
class DomainCommon:
    """Keys every domain has (`jtl.domains.base.COMMON_KEYS`)."""

    name: str = ""
    shifts: list[Any] | None = None
    classes: list[int] | None = bound(ge=0, default=None)
    per_class: int | Literal["all"] | None = bound(ge=1, default=None)
    max_train: int | None = bound(ge=1, default=None)
    val_fraction: float = bound(ge=0, lt=1, default=0.1)
    test_fraction: float = bound(gt=0, lt=1, default=0.2)
    split_seed: int = bound(ge=0, le=SEED_MAX, default=0)
    value_range: list[float] | None = bound(default=None)
    num_classes: int | None = bound(ge=2, le=100_000, default=None)


# A text domain's featurizer (jtl/domains/text.py): tokens by a tokenizer, or a bag of words.
TEXT_KEYS: dict[str, Any] = {
    "tokenizer": str | None, "max_length": int, "truncation": bool,
    "padding": Literal["max_length", "longest"], "vocabulary": str | None, "ngrams": int,
    "binary": bool}


@dataclasses.dataclass
class TextFeatures:
    """`text_features:` a run-level featurizer of its text domains (conf/text_features/,
    `jtl.domains.bow`); null: none."""

    name: Literal["bow"] = "bow"
    top_k: int = bound(ge=1, le=1 << 20, default=5000)
    ngrams: int = bound(ge=1, le=2, default=2)
    binary: bool = False


# Loader-specific keys, by domain name (a domain not listed keeps its extra keys unchecked).
DOMAIN_KEYS: dict[str, dict[str, Any]] = {
    "mnist": {"backend": Literal["auto", "offline", "tfds"]},
    "usps": {}, "sklearn_digits": {},
    "amazon_mdsd": {"product": Literal["books", "dvd", "electronics", "kitchen"]},
    # imagefolder.py, office31.py: storage_size is checked by the loader (>= 8)
    "imagefolder": {"root": str, "storage_size": int, "test": Literal["held_out", "all"],
                    "manifest": str | None},
    "office31": {"env": Literal["amazon", "dslr", "webcam"], "storage_size": int,
                 "test": Literal["held_out", "all"]},
    "npz": {"path": str, "max_value": float | None},  # max_value: value_range's old form
    # Text domains (jtl/domains/text.py): a reader's keys, then the featurizer's (TEXT_KEYS).
    "reviews": {"corpus": Literal["amazon_mdsd", "webis_cls10"],
                "product": Literal["books", "dvd", "electronics", "kitchen", "music"],
                "lang": Literal["en", "de", "fr", "jp"], "with_title": bool,
                "test": Literal["held_out", "unlabeled"], "train": Literal["train", "unlabeled"],
                **TEXT_KEYS},
    "text": {"path": str, "test_path": str | None, "format": Literal["csv", "tsv", "jsonl"] | None,
             "text_column": str, "label_column": str | None, "encoding": str | None,
             "bad_rows": Literal["skip", "error"], **TEXT_KEYS},
    "tfds": {"dataset": str | None, "train_split": str, "test_split": str | None,
             "image_key": str, "label_key": str, "tfds_data_dir": str | None},
    # colored_mnist.py, rotated_mnist.py: env is an index or a name; seed is DomainBed's --seed
    "colored_mnist": {"env": int | str, "seed": int,
                      "backend": Literal["auto", "offline", "tfds"]},
    "rotated_mnist": {"env": int | str, "seed": int,
                      "interpolation": Literal["bicubic", "bilinear"],
                      "backend": Literal["auto", "offline", "tfds"]},
}

# Shift parameters by shift (jtl/domains/shifts.py checks their names).
SHIFT_PARAMS: dict[str, dict[str, Any]] = {
    "rotate": {"degrees": float, "random": bool, "severity": int},
    "noise": {"std": float},
    "invert": {},
    "label_shift": {"weights": list[float]},
    "permute_labels": {"perm": list[int], "seed": int},
    # MNIST-C's corruptions (jtl/domains/corruptions.py): `severity` where MNIST-C has one
    **{n: {"severity": int} for n in ("shot_noise", "impulse_noise", "glass_blur",
                                      "motion_blur", "shear", "scale", "brightness",
                                      "translate", "fog", "spatter")},
    **{n: {} for n in ("stripe", "dotted_line", "zigzag", "canny_edges")},
}
SHIFT_BOUNDS = {("noise", "std"): {"ge": 0}, ("label_shift", "weights"): {"ge": 0},
                ("permute_labels", "seed"): {"ge": 0, "le": SEED_MAX},
                **{(n, "severity"): {"ge": 1, "le": 5}
                   for n, ps in SHIFT_PARAMS.items() if "severity" in ps}}


@dataclasses.dataclass
class Root:
    seed: int = bound(ge=0, le=SEED_MAX, default=0)
    init_from: str | None = None
    init_from_step: int | None = bound(ge=1, le=STEPS_MAX, default=None)
    load: str | None = ".*"
    dont_load: str | None = None
    freeze: str | None = None
    pretrain: str | list[str] | None = None
    # Roles beyond source/target (jtl/train/build.py): several sources, extra eval domains.
    sources: list[Any] | None = None
    eval: list[Any] | None = None
    # Train-time augmentation inside the step (jtl/domains/pp.py): [flip, crop, distort].
    augment: list[str] | None = None
    overwrite: bool = False
    debug: bool = False


# Sections validated elsewhere or not at all (Hydra's own, measure options by `measures`).
UNCHECKED = ("hydra", "measure", "inputs")  # inputs: recorded by jtl.inputs, not set by hand
GROUPS = ("paths", "source", "target", "model", "neck", "pp", "online", "method", "optim",
          "trainer", "transfer", "text_features")
REGEX_KEYS = ("load", "dont_load", "freeze")


# ---------------------------------------------------------------------------------------------
# Type checking


def _is_int(v: Any) -> bool:
    """An integer, or a float holding one (Hydra reads `1e3` as a float)."""
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v) and v.is_integer())


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _describe(tp: Any, rng: str = "") -> str:
    """A type as a user reads it: `a number > 0`, `an integer >= 1, or null`, `one of [a, b]`,
    `a list, each an integer >= 1`; `rng` (the bounds) goes with the numbers."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return "anything"
    if origin is Literal:
        return "one of [" + ", ".join(map(str, typing.get_args(tp))) + "]"
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        parts = [_describe(a, rng) for a in args if a is not type(None)]
        return " or ".join(parts) + (", or null" if type(None) in args else "")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        inner = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list, each {_describe(inner[0], rng)}" if inner and inner[0] is not Any \
            else "a list"
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a mapping"
    if tp in (int, float):
        return ("an integer" if tp is int else "a number") + (f" {rng}" if rng else "")
    return {bool: "true or false", str: "a string", type(None): "null"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def type_ok(v: Any, tp: Any) -> bool:
    """Whether `v` (a plain YAML value) has type `tp`."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object or tp is inspect.Parameter.empty:
        return True
    if tp is None or tp is type(None):
        return v is None
    if origin is Literal:
        return any(v == a and type(v) is type(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(v, a) for a in typing.get_args(tp))
    if origin is typing.ClassVar:
        return True
    if tp is int:
        return _is_int(v)
    if tp is float:
        return _is_number(v)
    if tp is bool:
        return isinstance(v, bool)
    if tp is str:
        return isinstance(v, str)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(v, str | bytes | Mapping) or not isinstance(v, Sequence):
            return False
        inner = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return not inner or all(type_ok(x, inner[0]) for x in v)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return isinstance(v, Mapping)
    return isinstance(tp, type) and isinstance(v, tp)


def _numbers(v: Any) -> list[float]:
    if _is_number(v):
        return [float(v)]
    if isinstance(v, Sequence) and not isinstance(v, str):
        return [float(x) for x in v if _is_number(x)]
    return []


def _fail(key: str, value: Any, what: str) -> JtlError:
    return JtlError(f"{key}={value!r}: {what}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def _expect(tp: Any, bounds: Mapping[str, float] | None) -> str:
    """`an integer >= 1`, `a number > 0, or null`: the type with its range."""
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    rng = " and ".join(f"{signs[op]} {_num(limit)}" for op, limit in (bounds or {}).items())
    return _describe(tp, rng)


def check_value(key: str, value: Any, tp: Any, bounds: Mapping[str, float] | None = None,
                finite: bool = True) -> None:
    """One key against its type and range, or a JtlError naming both."""
    expect = _expect(tp, bounds)
    if not type_ok(value, tp):
        raise _fail(key, value, f"must be {expect}")
    for x in _numbers(value):
        if finite and not math.isfinite(x):
            raise _fail(key, value, f"must be finite ({expect})")
        for op, limit in (bounds or {}).items():
            ok = {"gt": x > limit, "ge": x >= limit, "lt": x < limit, "le": x <= limit}[op]
            if not ok:
                raise _fail(key, value, f"must be {expect}")


@dataclasses.dataclass(frozen=True)
class Key:
    tp: Any
    bounds: Mapping[str, float] = dataclasses.field(default_factory=dict)
    finite: bool = True
    required: bool = False


def dataclass_keys(cls: type) -> dict[str, Key]:
    """A dataclass's fields as schema keys (resolved type hints, bounds from metadata)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        out[f.name] = Key(hints.get(f.name, Any), f.metadata.get("bounds", {}),
                          f.metadata.get("finite", True))
    return out


def signature_keys(fn: Callable, skip: Sequence[str] = ("self", "rngs", "ctx")) -> dict[str, Key]:
    """A function's keyword options as schema keys (its annotations; unannotated: Any)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation naming a type only imported for type checking
        hints = {}
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        tp = hints.get(name, Any)
        if typing.get_origin(tp) is tuple or tp is tuple:  # YAML has lists, not tuples
            tp = list[typing.get_args(tp)[0]] if typing.get_args(tp) else list
        out[name] = Key(tp, required=p.default is p.empty)
    return out


def check_section(section: Mapping[str, Any], keys: Mapping[str, Key], prefix: str,
                  what: str, open_keys: bool = False) -> None:
    """Every key of `section` known (unless `open_keys`) and of its type and range."""
    unknown = sorted(set(section) - set(keys))
    if unknown and not open_keys:
        raise JtlError(f"{what} has no key(s) {unknown}; it takes {sorted(keys)} (a key of "
                       "another option? choose that option instead of setting its keys)")
    for name, spec in keys.items():
        if name in section:
            check_value(f"{prefix}{name}", section[name], spec.tp, spec.bounds, spec.finite)


# ---------------------------------------------------------------------------------------------
# The groups


def _method_keys(name: str) -> dict[str, Key]:
    from jtl.methods import METHODS

    cls = METHODS.get(name)
    return {"name": Key(str), **dataclass_keys(cls)}


# `model.config` (a BERT's architecture for a random init): the config.json fields jtl reads,
# typed; the file's other fields pass unchecked (a config.json has many).
MODEL_CONFIG_KEYS: dict[str, Key] = {
    **{k: Key(int, {"ge": 1}) for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                         "num_attention_heads", "intermediate_size",
                                         "max_position_embeddings", "type_vocab_size")},
    "layer_norm_eps": Key(float, {"gt": 0}),
    "pad_token_id": Key(int | None, {"ge": 0}),
    "model_type": Key(str | None),
    "hidden_act": Key(str | None),
}


def _model_keys(name: str) -> dict[str, Key]:
    from jtl.models import MODELS

    cls = MODELS.get(name)
    keys = signature_keys(cls.__init__)
    keys["input_shape"] = Key(list[int], {"ge": 1, "le": 1 << 16})
    keys["name"] = Key(str)
    if "channels" in keys:
        keys["channels"] = dataclasses.replace(keys["channels"], bounds={"ge": 1})
    for k in ("features", "width", "blocks_per_stage"):
        if k in keys:
            keys[k] = dataclasses.replace(keys[k], bounds={"ge": 1})
    if "hidden" in keys:
        keys["hidden"] = Key(list[int], {"ge": 1})
    for k, spec in keys.items():
        if k in ("conv_impl",):
            keys[k] = Key(Literal["auto", "xla", "im2col"])
        elif k == "norm":
            keys[k] = Key(Literal["none", "batch"])
        else:
            keys[k] = dataclasses.replace(spec, required=False)
    return keys


def _recipe_keys() -> dict[str, Key]:
    from jtl.transfer.recipes import Recipe

    keys = dataclass_keys(Recipe)
    keys["groups"] = Key(list[dict] | None)
    keys["keep_blocks"] = Key(int | None, {"ge": 1})
    keys["freeze_k"] = Key(int, {"ge": 0})
    keys["layer_decay"] = Key(float | None, {"gt": 0})
    keys["bn"] = Key(Literal["train", "frozen"])
    return keys


def validate_domain(cfg: Mapping[str, Any], role: str = "") -> None:
    """One domain's config (`source`, `target`, or a domain built directly, e.g. by a measure)
    against the schema: `jtl.domains.build_domain` calls it, so its keys' types and ranges are
    checked here and nowhere else."""
    _domain(cfg, role or "domain")


def _domain(cfg: Mapping[str, Any], role: str) -> None:
    if not isinstance(cfg, Mapping):
        raise _fail(role, cfg, "a domain (domain@source=<name>, a mapping with name:), or "
                    "null for a source-free run")
    name = cfg.get("name")
    check_value(f"{role}.name", name, str)
    keys = dataclass_keys(DomainCommon)
    extra = DOMAIN_KEYS.get(str(name))
    keys.update({k: Key(tp) for k, tp in (extra or {}).items()})
    check_section(cfg, keys, f"{role}.", f"domain '{name}' ({role})", open_keys=extra is None)
    vr = cfg.get("value_range")
    # (A range float32 cannot hold needs the data's dtype: jtl.domains checks that.)
    if vr is not None and (len(vr) != 2 or not float(vr[0]) < float(vr[1])):
        raise _fail(f"{role}.value_range", vr, "must be [lo, hi] with lo < hi")
    for i, s in enumerate(cfg.get("shifts") or []):
        _shift(s, f"{role}.shifts[{i}]")


def _shift(spec: Any, key: str) -> None:
    if isinstance(spec, str):
        return  # a bare name: jtl/domains/shifts.py checks it exists and needs no parameters
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise _fail(key, spec, "a shift is a name or a mapping with `name:`")
    name = spec["name"]
    params = SHIFT_PARAMS.get(str(name))
    if params is None:
        return  # unknown: shifts.py names the known ones
    for p, v in spec.items():
        if p in params:
            check_value(f"{key}.{p}", v, params[p], SHIFT_BOUNDS.get((name, p)))


def _trainer(t: Mapping[str, Any]) -> None:
    check_section(t, dataclass_keys(Trainer), "trainer.", "trainer")
    seeds = t.get("seeds")
    if seeds is not None and (not seeds or len({int(s) for s in seeds}) != len(seeds)):
        raise _fail("trainer.seeds", seeds, "a non-empty list of distinct seeds")
    if t.get("search") is not None:
        from jtl.train.search import Search

        check_section(t["search"], dataclass_keys(Search), "trainer.search.", "trainer.search")
    steps = int(t.get("steps", 1))
    every = [int(t[k]) for k in ("eval_every", "log_every", "checkpoint_every") if k in t]
    marks = sum(steps // e for e in every)
    if marks > MAX_BOUNDARIES:
        raise JtlError(f"trainer.steps={steps} with eval/log/checkpoint every {every} steps "
                       f"makes {marks:,} logging points (at most {MAX_BOUNDARIES:,}); raise "
                       "trainer.log_every / eval_every / checkpoint_every")


def validate(cfg: Mapping[str, Any]) -> None:
    """A composed run config against the schema; raises one JtlError at the first problem."""
    root = {k: v for k, v in cfg.items() if k not in GROUPS and k not in UNCHECKED}
    check_section(root, dataclass_keys(Root), "", "the config")
    for key in REGEX_KEYS:
        if cfg.get(key):
            try:
                re.compile(str(cfg[key]))
            except re.error as e:
                raise JtlError(f"{key}='{cfg[key]}' is not a valid regex ({e})") from e
    check_section(cfg.get("paths") or {}, dataclass_keys(Paths), "paths.", "paths")
    for role in ("source", "target"):
        if cfg.get(role) is not None:
            _domain(cfg[role], role)
    for key in ("sources", "eval"):
        for i, d in enumerate(cfg.get(key) or []):
            if isinstance(d, Mapping):
                _domain(d, f"{key}[{i}]")
    if cfg.get("trainer") is not None:
        _trainer(cfg["trainer"])
    optim = cfg.get("optim")
    if optim is not None:
        check_value("optim.name", optim.get("name"), Literal[tuple(OPTIMIZERS)])  # type: ignore[misc]
        check_section(optim, dataclass_keys(OPTIMIZERS[optim["name"]]), "optim.",
                      f"optim '{optim['name']}'")
    if cfg.get("online") is not None:
        if not isinstance(cfg["online"], Mapping):
            raise _fail("online", cfg["online"], "a mapping (split, order, episodic), or null: "
                        "choose online=stream")
        check_section(cfg["online"], dataclass_keys(Online), "online.", "online")
    if cfg.get("text_features") is not None:
        if not isinstance(cfg["text_features"], Mapping):
            raise _fail("text_features", cfg["text_features"], "a mapping (top_k, ngrams, "
                        "binary), or null: choose text_features=bow")
        check_section(cfg["text_features"], dataclass_keys(TextFeatures), "text_features.",
                      "text_features")
    neck = cfg.get("neck")
    if neck is not None:
        if not isinstance(neck, Mapping):
            raise _fail("neck", neck, "a mapping (bottleneck_dim, pool), or null: "
                        "choose neck=bottleneck or neck=pool")
        check_section(neck, dataclass_keys(Neck), "neck.", "neck")
    for group, keys_of in (("model", _model_keys), ("method", _method_keys)):
        section = cfg.get(group)
        if section is not None:
            check_value(f"{group}.name", section.get("name"), str)
            check_section(section, keys_of(section["name"]), f"{group}.",
                          f"{group} '{section['name']}'")
    if isinstance((cfg.get("model") or {}).get("config"), Mapping):  # a config.json's fields
        check_section(cfg["model"]["config"], MODEL_CONFIG_KEYS, "model.config.",
                      "model.config", open_keys=True)
    # After the model's keys: the pipeline's sizes are checked against model.input_shape.
    if cfg.get("augment") or cfg.get("pp") is not None:
        from jtl.domains.pp import check_augment, check_pp

        aug = check_augment(cfg.get("augment"))
        if cfg.get("pp") is not None:
            if not isinstance(cfg["pp"], Mapping):
                raise _fail("pp", cfg["pp"], "a mapping (resize, eval_ops), or null: choose "
                            "pp=tllib_imagenet")
            check_section(cfg["pp"], dataclass_keys(Preprocess), "pp.", "pp")
            check_pp(cfg["pp"], aug, (cfg.get("model") or {}).get("input_shape"))
    if cfg.get("transfer"):
        check_section(cfg["transfer"], _recipe_keys(), "transfer.", "transfer")
    if cfg.get("measure"):
        validate_measures(cfg["measure"])


def measure_option_keys(fn: Callable) -> dict[str, Key]:
    """A measure's options: its function's keywords; counts and sizes are >= 1."""
    keys = signature_keys(fn)
    for k, spec in keys.items():
        if k in ("max_samples", "max_points", "n_boot", "n_init", "n_clusters"):
            keys[k] = dataclasses.replace(spec, bounds={"ge": 1})
        elif k in ("probe_c", "c", "perplexity"):
            keys[k] = dataclasses.replace(spec, bounds={"gt": 0})
        elif k == "level":
            keys[k] = dataclasses.replace(spec, bounds={"gt": 0, "lt": 1})
    return keys


def validate_measures(measures: Mapping[str, Any]) -> None:
    """`measure: {name: {name: ..., **options}}` against each measure's options."""
    from jtl.measures import MEASURES

    for key, entry in (measures or {}).items():
        options = dict(entry or {})
        name = str(options.pop("name", key))
        fn = MEASURES.get(name)
        keys = measure_option_keys(fn)
        open_keys = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
        check_section(options, {k: dataclasses.replace(s, required=False)
                                for k, s in keys.items()}, f"measure.{key}.",
                      f"measure '{name}'", open_keys=open_keys)


@dataclasses.dataclass
class MeasureApp:
    """`python -m jtl.measure`'s own keys (`jtl.cli.measure.APP_DEFAULTS`)."""

    run_dir: str = ""
    layer: str = "features"
    split: Literal["train", "val", "test"] = "test"
    max_samples: int | None = bound(ge=1, default=2000)
    step: int | None = bound(ge=0, le=STEPS_MAX, default=None)
    seed: int | None = bound(ge=0, le=SEED_MAX, default=None)


def validate_measure_app(cfg: Mapping[str, Any]) -> None:
    """A composed `jtl.measure` config: its keys, then every measure's options."""
    check_section({k: v for k, v in cfg.items() if k != "measure"},
                  dataclass_keys(MeasureApp), "", "jtl.measure")
    validate_measures(cfg.get("measure") or {})
