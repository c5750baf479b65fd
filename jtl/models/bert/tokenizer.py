"""Texts -> int32 `tokens` and `mask` with Hugging Face `tokenizers` from a `tokenizer.json`.

The file's own truncation and padding settings are replaced by ours: truncate to
`max_length` (special tokens included), pad on the right to the batch's longest sequence
(`padding="longest"`) or to `max_length` (`"max_length"`). all-MiniLM-L6-v2's tokenizer.json
pads every row to 128 by default; the reference outputs pad to the batch's longest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jtl.errors import JtlError

PADDINGS = ("longest", "max_length")


class Tokenizer:
    """`Tokenizer(path)(texts)` -> {"tokens": (B,T) int32, "mask": (B,T) int32}."""

    def __init__(self, path: str | Path, max_length: int = 128, padding: str = "longest") -> None:
        from tokenizers import Tokenizer as HfTokenizer

        if padding not in PADDINGS:
            raise JtlError(f"padding={padding!r}: use one of {PADDINGS}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise JtlError(f"max_length={max_length!r}: an integer >= 2 ([CLS] and [SEP])")
        path = Path(path)
        try:
            tok = HfTokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception for a missing/damaged file
            raise JtlError(f"{path}: cannot read a tokenizer.json ({e})") from None
        pad = tok.padding or {}
        pad_token = pad.get("pad_token", "[PAD]")
        pad_id = pad.get("pad_id", tok.token_to_id(pad_token))
        if pad_id is None:
            raise JtlError(f"{path}: no padding token ({pad_token!r} is not in the vocabulary)")
        tok.enable_truncation(max_length=max_length)
        tok.enable_padding(pad_id=pad_id, pad_token=pad_token,
                           length=max_length if padding == "max_length" else None)
        self.path = path
        self.max_length = max_length
        self.padding = padding
        self.pad_id = int(pad_id)
        self._tok = tok

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        if isinstance(texts, str):
            raise JtlError("Tokenizer takes a list of texts, not one string")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise JtlError(f"text {bad} is {type(texts[bad]).__name__}, not a string")
        if not texts:
            width = self.max_length if self.padding == "max_length" else 0
            empty = np.zeros((0, width), np.int32)
            return {"tokens": empty, "mask": empty.copy()}
        enc = self._tok.encode_batch(list(texts))
        return {"tokens": np.array([e.ids for e in enc], np.int32),
                "mask": np.array([e.attention_mask for e in enc], np.int32)}
