"""Text domains: raw texts read by a reader, then featurized into the data model's fields.

A text reader (`reviews`, `text`: the user's own CSV / TSV / JSONL files) returns `Texts`
(strings and labels, as the data set defines them); `text_domain(name)` registers it as a
domain whose loader featurizes those texts, by the domain's keys, into one input field:

- `tokenizer: <tokenizer.json or a model folder holding one>` -> `tokens` + `mask` (N, T)
  int32 (`jtl.domains.tokenize`: Hugging Face `tokenizers`, `max_length`, `truncation`,
  `padding`; cached once per tokenizer sha256 and domain config), read by a BERT-style model;
- `vocabulary: <file, one term a line>` -> `features` (N, V) float32 bag-of-words counts
  (`binary`: 0/1; `ngrams`: 1 or 2; `jtl.domains.bow`), read by `model=mlp`/`dann_shallow`.
  The run-level `text_features=bow` builds that vocabulary from the source and unlabeled
  target train texts of the run (never a test split) and sets it on every text domain.

A domain with neither is refused in one line. `build_domain` then does what it does for any
domain (test hold-out when the reader has none, val split, subsets).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.domains.base import (
    COMMON_KEYS,
    DOMAINS,
    LoadContext,
    RawData,
    _split_off,
    _split_per_class,
    locate,
)
from jtl.errors import JtlError

log = logging.getLogger("jtl")

# A text domain's featurizing keys (the rest are its reader's).
FEATURE_KEYS = ("tokenizer", "max_length", "truncation", "padding", "vocabulary", "ngrams",
                "binary")
FEATURE_DEFAULTS = {"tokenizer": None, "max_length": 128, "truncation": True,
                    "padding": "max_length", "vocabulary": None, "ngrams": 2, "binary": False}
# ASCII control characters other than tab, newline, carriage return (XML 1.0 forbids them).
CONTROL_CHARS = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F], " ")


@dataclasses.dataclass(frozen=True)
class Texts:
    """What a text reader returns: strings and int labels as the data set defines them.

    `files`: each file read -> its sha256. `labels` as `RawData.labels`; `stratified` as
    `RawData.stratified`; the readers here leave it False: the test hold-out is then drawn
    from the row count and `split_seed` alone, so an unlabeled target's pool does not
    depend on its labels (a label-shuffle leaves it as it is).
    """

    train: list[str]
    y_train: np.ndarray
    test: list[str] | None = None
    y_test: np.ndarray | None = None
    num_classes: int | None = None
    labels: str = "all"
    class_names: tuple[str, ...] = ()
    stratified: bool = False
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)


Reader = Callable[[Mapping[str, Any], LoadContext], Texts]
READERS: dict[str, Reader] = {}


def clean(text: str) -> str:
    """Control characters to spaces, Unicode NFC (a data set's own bytes otherwise kept)."""
    return unicodedata.normalize("NFC", text.translate(CONTROL_CHARS)).strip()


def text_domain(name: str) -> Callable[[Reader], Reader]:
    """Register `reader` as text reader `name` and as domain `name` (featurized by its keys)."""

    def register(reader: Reader) -> Reader:
        READERS[name] = reader

        def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
            return featurize(name, cfg, ctx)

        load.__doc__ = reader.__doc__
        DOMAINS.register(name)(load)
        return reader

    return register


def feature_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: cfg.get(k, v) for k, v in FEATURE_DEFAULTS.items()}


def reader_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in FEATURE_KEYS and k not in COMMON_KEYS}


def featurize(name: str, cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """The loader of text domain `name`: read, then tokens or bag-of-words by the keys."""
    f = feature_cfg(cfg)
    if f["tokenizer"] and f["vocabulary"]:
        raise JtlError("a text domain is tokenized (`tokenizer=`) or a bag of words "
                       "(`vocabulary=` / text_features=bow), not both: unset one")
    if f["tokenizer"]:
        from jtl.domains.tokenize import tokenized

        return tokenized(name, reader_cfg(cfg), f, ctx)
    if f["vocabulary"]:
        from jtl.domains import bow

        texts = READERS[name](reader_cfg(cfg), ctx)
        vocab = bow.read_vocabulary(f["vocabulary"], ctx)

        def vec(t: list[str]) -> np.ndarray:
            return bow.vectorize(t, vocab, int(f["ngrams"]), bool(f["binary"]))

        return raw_data(texts, vec(texts.train), None if texts.test is None else vec(texts.test),
                        "features")
    raise JtlError(f"text domain '{name}' needs a featurizer: `tokenizer=<tokenizer.json or "
                   f"model folder>` for a BERT-style model (tokens/mask), or text_features=bow "
                   f"(a bag-of-words vocabulary from the run's source and target train texts) "
                   f"for model=mlp / dann_shallow")


def raw_data(texts: Texts, x_train: Any, x_test: Any, field: str) -> RawData:
    return RawData(x_train=x_train, y_train=texts.y_train, x_test=x_test, y_test=texts.y_test,
                   num_classes=texts.num_classes, labels=texts.labels, field=field,
                   class_names=texts.class_names, stratified=texts.stratified)


def train_texts(cfg: Mapping[str, Any], ctx: LoadContext) -> list[str]:
    """The texts of a text domain's train split as `build_domain` makes it (a reader without a
    test split loses the same `test_fraction` hold-out here), before the val split: what a
    transductive featurizer may read of it. Never any test text."""
    texts = READERS[cfg["name"]](reader_cfg(cfg), ctx)
    if texts.test is not None:
        return list(texts.train)
    fraction, seed = float(cfg.get("test_fraction", 0.2)), int(cfg.get("split_seed", 0))
    keep, _ = (_split_per_class(texts.y_train, fraction, seed) if texts.stratified else
               _split_off(len(texts.y_train), fraction, seed))
    return [texts.train[i] for i in keep]


def is_text(cfg: Mapping[str, Any] | None) -> bool:
    return bool(cfg) and str(cfg.get("name")) in READERS


# ---------------------------------------------------------------------------------------------
# The `text` domain: a user's own CSV / TSV / JSONL files.

FORMATS = ("csv", "tsv", "jsonl")


def _format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise JtlError(f"format={fmt!r}: one of {list(FORMATS)}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    suffix = {"json": "jsonl", "ndjson": "jsonl", "txt": "tsv"}.get(suffix, suffix)
    if suffix not in FORMATS:
        raise JtlError(f"{path}: cannot tell the format from '{path.suffix}'; set "
                       f"format=csv|tsv|jsonl")
    return suffix


def _resolve(path: str, ctx: LoadContext, key: str) -> Path:
    found = locate(path, ctx.data_dir)
    if found is None or not found.is_file():
        raise JtlError(f"text domain: {key} '{path}' not found (as given, or under "
                       f"{ctx.data_dir}); set `<source|target>.{key}=/absolute/path`")
    return found


def _decode(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise JtlError(f"{path}: not {encoding} (byte {e.start}, line {line}: "
                       f"{data[e.start:e.start + 4]!r}); set encoding= to the file's encoding, "
                       f"e.g. encoding=latin-1 or cp1252") from None
    except LookupError:
        raise JtlError(f"encoding={encoding!r} is not a codec Python knows; e.g. utf-8, "
                       f"latin-1, cp1252, utf-16") from None


def _rows(path: Path, fmt: str, encoding: str) -> list[tuple[int, Mapping[str, Any] | str]]:
    """(line number, row mapping) or (line number, why the row is bad)."""
    text = _decode(path, encoding)
    if fmt == "jsonl":
        out: list[tuple[int, Mapping[str, Any] | str]] = []
        for i, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                out.append((i, f"not JSON ({e.msg})"))
                continue
            out.append((i, row if isinstance(row, dict) else "not a JSON object"))
        return out
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    try:
        header = next(reader)
    except StopIteration:
        raise JtlError(f"{path} is empty; it needs a header row naming its columns") from None
    out = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                out.append((line, f"{len(row)} fields, the header has {len(header)}"))
                continue
            out.append((line, dict(zip(header, row, strict=True))))
    except csv.Error as e:
        raise JtlError(f"{path}, line {reader.line_num}: {e}; fix the quoting or set "
                       f"format=") from None
    return out


def read_table(path: Path, fmt: str, encoding: str, text_column: str, label_column: str | None
               ) -> tuple[list[str], list[Any] | None, list[str]]:
    """(texts, raw labels or None when the file has no label column, bad-row notes)."""
    rows = _rows(path, fmt, encoding)
    good = [r for _, r in rows if not isinstance(r, str)]
    if not good:
        raise JtlError(f"{path}: no readable row (of {len(rows)})")
    if not any(text_column in r for r in good):
        raise JtlError(f"{path}: no column '{text_column}'; its columns are "
                       f"{sorted(good[0])}. Set text_column=")
    labeled = label_column is not None and any(label_column in r for r in good)
    texts, labels, bad = [], [] if labeled else None, []
    for line, row in rows:
        if isinstance(row, str):
            bad.append(f"line {line}: {row}")
            continue
        t = row.get(text_column)
        if not isinstance(t, str) or not clean(t):
            bad.append(f"line {line}: {'no' if t is None else 'empty'} text")
            continue
        if labeled:
            y = row.get(label_column)
            if y is None or (isinstance(y, str) and not y.strip()):
                bad.append(f"line {line}: no label")
                continue
            labels.append(y.strip() if isinstance(y, str) else y)
        texts.append(clean(t))
    return texts, labels, bad


def label_ids(train: list[Any], test: list[Any] | None, where: str
              ) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Integer labels as they are (class ids); any other value: names, ids in sorted order."""
    values = [*train, *(test or [])]

    def as_int(v: Any) -> int | None:
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return v
        if isinstance(v, str) and v.lstrip("-").isdigit():
            return int(v)
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return None

    ints = [as_int(v) for v in values]
    if all(i is not None for i in ints):
        if min(ints, default=0) < 0:
            raise JtlError(f"{where}: negative label {min(ints)}; labels are class ids 0..K-1 "
                           f"or class names")
        ys = np.asarray(ints, np.int64)
        names: tuple[str, ...] = ()
    else:
        names = tuple(sorted({str(v) for v in values}))
        index = {n: i for i, n in enumerate(names)}
        ys = np.asarray([index[str(v)] for v in values], np.int64)
    n = len(train)
    return ys[:n], (None if test is None else ys[n:]), names


@text_domain("text")
def read_text(cfg: Mapping[str, Any], ctx: LoadContext) -> Texts:
    """Keys: path (required), test_path (null: `test_fraction` held out), format
    (csv|tsv|jsonl, null: by extension), text_column, label_column (a file without it is
    unlabeled), encoding, bad_rows (skip: skipped and reported in one line; error)."""
    if not cfg.get("path"):
        raise JtlError("the `text` domain needs `path`, e.g. `target.path=/data/reviews.csv`")
    enc = str(cfg.get("encoding") or "utf-8-sig")
    text_col, label_col = str(cfg.get("text_column", "text")), cfg.get("label_column", "label")
    label_col = None if label_col is None else str(label_col)
    policy = cfg.get("bad_rows", "skip")
    if policy not in ("skip", "error"):
        raise JtlError(f"bad_rows={policy!r}: skip (reported in one line) or error")
    parts, files, notes = {}, {}, []
    for key in ("path", "test_path"):
        if not cfg.get(key):
            continue
        path = _resolve(str(cfg[key]), ctx, key)
        fmt = _format(path, cfg.get("format"))
        texts, labels, bad = read_table(path, fmt, enc, text_col, label_col)
        if bad:
            shown = "; ".join(bad[:3]) + ("; ..." if len(bad) > 3 else "")
            msg = f"{path}: {len(bad)} bad row(s) of {len(texts) + len(bad)} ({shown})"
            if policy == "error":
                raise JtlError(f"{msg}; fix them, or set bad_rows=skip")
            notes.append(msg)
        if not texts:
            raise JtlError(f"{path}: no usable row ({'; '.join(bad[:3])})")
        parts[key] = (texts, labels)
        from jtl.domains._offline import sha256_of

        files[str(path)] = sha256_of(path)
    if notes:
        log.warning("text domain: skipped %s", " | ".join(notes))
    (tr, y_tr) = parts["path"]
    te, y_te = parts.get("test_path", (None, None))
    where = f"text domain ({cfg['path']})"
    if te is not None and y_te is None:
        raise JtlError(f"{where}: test_path has no '{label_col}' column; a test split needs "
                       f"labels (leave test_path out to hold out test_fraction)")
    labels = "all"
    if y_tr is None:  # unlabeled: placeholder zeros no loss may read
        if te is None:
            raise JtlError(f"{where}: no '{label_col}' column and no test_path: an unlabeled "
                           f"train file needs a labeled test_path beside it (scoring needs "
                           f"labels)")
        y_tr, labels = [0] * len(tr), "test"
    ytr, yte, names = label_ids(list(y_tr) if labels == "all" else [], y_te, where)
    if labels == "test":
        ytr = np.zeros(len(tr), np.int64)
    num_classes = cfg.get("num_classes")
    return Texts(train=tr, y_train=ytr, test=te, y_test=yte, labels=labels, class_names=names,
                 num_classes=None if num_classes is None else int(num_classes),
                 files=files)
