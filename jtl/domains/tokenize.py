"""A text domain's texts -> `tokens` + `mask` (N, T) int32, cached on disk.

`tokenizer:` a `tokenizer.json`, a folder holding one (e.g. `jtl.models.bert.fetch.model_dir()`),
or the name of a model folder in jtl's models dir (`tokenizer=all-MiniLM-L6-v2`). Hugging
Face `tokenizers` via `jtl.models.bert.tokenizer.Tokenizer` (the file's own padding and
truncation settings replaced): `max_length` tokens at most, special tokens included;
`truncation: false` refuses a text longer than that instead of cutting it.

`padding: max_length` (the default) pads every row to `max_length`: every domain of a run
has the same T, so the compiled step keeps one shape whatever the batch (a batch's longest
would recompile the step for every new length). `padding: longest` pads to the longest
text of the domain (train and test together), <= max_length; a run's domains may then differ.

Cache: `<tfds_dir>/../text/tokens-<key>.npz`, key = sha256 of the tokenizer file's sha256,
these settings and the exact texts read (so a changed file, reader or config is a new
entry); written atomically, read back on the next load of the same domain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.domains._offline import sha256_of
from jtl.domains.base import LoadContext, RawData, locate
from jtl.domains.text import READERS, raw_data
from jtl.errors import JtlError

log = logging.getLogger("jtl")
CACHE_VERSION = 1
PADDINGS = ("max_length", "longest")


def tokenizer_file(spec: str, ctx: LoadContext) -> Path:
    """The tokenizer.json that `tokenizer: <spec>` names (a file, a folder, a model name)."""
    from jtl.models.bert.fetch import models_dir

    found = locate(str(spec), None) or locate(str(spec), models_dir())
    if found is not None and found.is_dir():
        found = found / "tokenizer.json" if (found / "tokenizer.json").is_file() else None
    if found is None or not found.is_file():
        raise JtlError(f"tokenizer={spec!r}: no tokenizer.json there (as a file, a folder "
                       f"holding one, or a model folder under {models_dir()}); for MiniLM run "
                       f"`python -m jtl.models.bert.fetch`")
    return found


def cache_dir(ctx: LoadContext) -> Path:
    return Path(ctx.tfds_dir).parent / "text"


def _key(tok_sha: str, settings: Mapping[str, Any], texts: list[list[str]]) -> str:
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "tokenizer": tok_sha, **settings},
                                  sort_keys=True).encode())
    for part in texts:
        h.update(f"\0{len(part)}\0".encode())
        for t in part:
            h.update(t.encode("utf-8") + b"\0")
    return h.hexdigest()


def encode(texts: list[str], path: Path, max_length: int, padding: str, truncation: bool,
           where: str) -> dict[str, np.ndarray]:
    """(N, T) tokens and mask; T = max_length, or the longest (<= max_length)."""
    from jtl.models.bert.tokenizer import Tokenizer

    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise JtlError(f"max_length={max_length!r}: an integer >= 2 ([CLS] and [SEP])")
    if padding not in PADDINGS:
        raise JtlError(f"padding={padding!r}: one of {list(PADDINGS)} (max_length keeps one "
                       f"compiled shape)")
    if not truncation and texts:
        from tokenizers import Tokenizer as HfTokenizer

        full = HfTokenizer.from_file(str(path))
        full.no_truncation()
        full.no_padding()
        lengths = np.asarray([len(e.ids) for e in full.encode_batch(texts)])
        over = int((lengths > max_length).sum())
        if over:
            raise JtlError(f"{where}: {over} of {len(texts)} texts are longer than max_length="
                           f"{max_length} tokens (the longest {int(lengths.max())}); raise "
                           f"max_length or set truncation=true")
    out = Tokenizer(path, max_length=max_length, padding=padding)(texts)
    full_rows = int((out["mask"].sum(axis=1) == max_length).sum())
    if truncation and full_rows:
        log.info("%s: %d of %d texts fill max_length=%d tokens (truncated, or exactly that "
                 "long)", where, full_rows, len(texts), max_length)
    return out


def tokenized(name: str, rcfg: Mapping[str, Any], f: Mapping[str, Any], ctx: LoadContext
              ) -> RawData:
    """Text domain `name` read by its reader, as tokens and mask (from the cache if there)."""
    texts = READERS[name](rcfg, ctx)
    path = tokenizer_file(str(f["tokenizer"]), ctx)
    settings = {"max_length": f["max_length"], "padding": f["padding"],
                "truncation": bool(f["truncation"])}
    parts = [texts.train, texts.test or []]
    key = _key(sha256_of(path), settings, parts)
    file = cache_dir(ctx) / f"tokens-{key}.npz"
    arrays = None
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            log.warning("tokens cache %s unreadable (%s): tokenizing again", file, e)
    if arrays is None:
        enc = encode([*texts.train, *(texts.test or [])], path, f["max_length"], f["padding"],
                     bool(f["truncation"]), f"text domain '{name}'")
        arrays = {"tokens": enc["tokens"], "mask": enc["mask"]}
        _save(file, arrays)
    n = len(texts.train)

    def rows(sl: slice) -> dict[str, np.ndarray]:
        return {"tokens": arrays["tokens"][sl], "mask": arrays["mask"][sl]}

    return raw_data(texts, rows(slice(0, n)), None if texts.test is None else rows(slice(n, None)),
                    "tokens")


def _save(file: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically (a temporary file renamed into place); a cache that cannot be written is
    only logged: the arrays are in memory."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tokens-", suffix=".npz")
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **arrays)
        os.replace(tmp, file)
    except OSError as e:
        log.warning("tokens cache %s not written (%s)", file, e)
