"""Bag-of-words features for raw text: a transductive featurizer over a run's domains.

`text_features=bow` (conf/text_features/bow.yaml, a run-level choice) builds one vocabulary
from the run's text domains and gives it to each, so every text domain becomes a `features`
domain (N, top_k) that `model=mlp` / `dann_shallow` and every method read:

- Terms (`analyze`): lowercased word tokens (Unicode `\\w+`); a run of CJK characters (Han,
  Hiragana, Katakana: Japanese has no spaces) becomes its overlapping character bigrams, as
  Lucene's CJK analyzer does; with `ngrams: 2` also the bigrams of adjacent terms
  (Blitzer's and Chen et al.'s unigram + bigram features).
- Vocabulary (`vocabulary`): the `top_k` terms by total count over the train splits of the
  sources and of the target (the target's unlabeled pool, its texts only), ties by term.
  Never a test split: `jtl.domains.text.train_texts` holds out the same test split as
  `build_domain`, so the target test texts, on which accuracy is reported, never choose a
  feature. Eval domains are featurized with it, never read to build it.
- Values: counts (`binary: false`), or 0/1.

The vocabulary is built at every load (a pass over a few thousand texts), written under
`<tfds_dir>/../text/vocab-<sha256 of its terms>.txt` and named by each domain's
`vocabulary` key (a domain may also name a vocabulary file of its own: one term a line).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtl.domains.base import LoadContext, locate
from jtl.errors import JtlError

_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]+")
VOCAB_VERSION = 1


def _units(word: str) -> list[str]:
    """A word token: itself, or its CJK runs as character bigrams and other parts as words."""
    if not _CJK.search(word):
        return [word]
    out, pos = [], 0
    for m in _CJK.finditer(word):
        if m.start() > pos:
            out.append(word[pos:m.start()])
        run = m.group()
        out += [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]
        pos = m.end()
    if pos < len(word):
        out.append(word[pos:])
    return out


def analyze(text: str, ngrams: int = 2) -> list[str]:
    """The terms of one text: unigrams, and with ngrams=2 the bigrams 'a b' of adjacent ones."""
    if ngrams not in (1, 2):
        raise JtlError(f"ngrams={ngrams!r}: 1 (words) or 2 (words and word bigrams)")
    uni = [u for w in _WORD.findall(text.lower()) for u in _units(w)]
    return uni + [f"{a} {b}" for a, b in itertools.pairwise(uni)] if ngrams == 2 else uni


def vocabulary(texts: Iterable[str], top_k: int, ngrams: int = 2) -> list[str]:
    """The `top_k` most frequent terms (total count; ties in term order)."""
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(analyze(t, ngrams))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [term for term, _ in ranked[:top_k]]


def vectorize(texts: Sequence[str], vocab: Sequence[str], ngrams: int = 2,
              binary: bool = False) -> np.ndarray:
    """(N, len(vocab)) float32: each term's count in each text (0/1 with `binary`)."""
    index = {t: i for i, t in enumerate(vocab)}
    x = np.zeros((len(texts), len(vocab)), np.float32)
    for row, text in enumerate(texts):
        for term, c in Counter(analyze(text, ngrams)).items():
            j = index.get(term)
            if j is not None:
                x[row, j] = 1.0 if binary else c
    return x


def read_vocabulary(path: str, ctx: LoadContext) -> list[str]:
    found = locate(str(path), ctx.data_dir)
    if found is None or not found.is_file():
        raise JtlError(f"vocabulary={path!r}: no such file (one term a line); or leave it null "
                       f"and choose text_features=bow")
    terms = found.read_text(encoding="utf-8").split("\n")
    terms = [t for t in terms if t]
    if not terms:
        raise JtlError(f"vocabulary {found} is empty")
    return terms


def resolve(cfg: Mapping[str, Any], ctx: LoadContext, domains: Sequence[tuple[str, Mapping]]
            ) -> dict[str, dict[str, Any]]:
    """Each text domain's keys for `text_features` (by role; others get none): the one
    vocabulary built from the `sources*`/`target` roles' train texts (never `eval` domains)."""
    from jtl.domains.base import DOMAINS
    from jtl.domains.text import is_text, train_texts

    spec = cfg.get("text_features")
    if not spec:
        return {}
    if not isinstance(spec, Mapping) or spec.get("name") != "bow":
        raise JtlError(f"text_features={spec!r}: choose text_features=bow (conf/text_features/)")
    DOMAINS.names()  # the text readers register on discovery
    top_k, ngrams = int(spec.get("top_k", 5000)), int(spec.get("ngrams", 2))
    binary = bool(spec.get("binary", False))
    text_roles = [(r, d) for r, d in domains if is_text(d)]
    if not text_roles:
        raise JtlError("text_features=bow needs text domains (reviews, text); this run has "
                       "none: drop text_features")
    builders = [(r, d) for r, d in text_roles if r == "target" or r.startswith("source")]
    pool = [t for _, d in builders for t in train_texts(d, ctx)]
    terms = vocabulary(pool, top_k, ngrams)
    h = hashlib.sha256(json.dumps({"v": VOCAB_VERSION, "top_k": top_k, "ngrams": ngrams}
                                  ).encode())
    h.update("\n".join(terms).encode("utf-8"))
    file = Path(ctx.tfds_dir).parent / "text" / f"vocab-{h.hexdigest()}.txt"
    if not file.is_file():
        _write(file, terms)
    keys = {"vocabulary": str(file), "ngrams": ngrams, "binary": binary}
    return {r: keys for r, _ in text_roles}


def _write(file: Path, terms: list[str]) -> None:
    if any("\n" in t for t in terms):  # \w+ tokens never hold one
        raise JtlError("a vocabulary term holds a newline")
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".vocab-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(terms) + "\n")
    os.replace(tmp, file)
