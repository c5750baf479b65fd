"""Raw-text product reviews: Blitzer et al.'s Multi-Domain Sentiment Dataset and Webis-CLS-10.

A text domain (`jtl.domains.text`: featurized by `tokenizer=` or a bag of words). Keys:

- `corpus: amazon_mdsd` (Blitzer, Dredze, Pereira 2007; `sorted_data_acl/`), `product:
  books|dvd|electronics|kitchen`. Train = the 2000 labeled reviews: label from the file, as
  the data set defines it (`positive.review` 1, `negative.review` 0). No test file ships
  with them, so `build_domain` holds out `test_fraction` of them (`split_seed`; drawn
  without the labels, so a target's unlabeled pool does not depend on them).
  `test: unlabeled` reads `unlabeled.review` (not in ../shared/data: see its README) as the
  test split instead, labelled by rating (> 3 positive, < 3 negative, 3 dropped), as DANN
  uses that set. The files are pseudo-XML, not well formed (no root, unescaped `&`, control
  characters, HTML entities): read line by line, tolerant of unclosed tags.
- `corpus: webis_cls10` (Prettenhofer & Stein 2010), `lang: en|de|fr|jp`, `product:
  books|dvd|music`: `train.review` -> train, `test.review` -> test (2000 each), label from
  `<rating>` as CLS-10 defines it (> 3 positive, < 3 negative; none is 3). `train:
  unlabeled` takes `unlabeled.review` (not shipped here) as an unlabeled train split.

Text = title / summary, a newline, then the review text (`with_title: false`: the text
alone); a review with neither is dropped, and what was dropped is logged in one line. The
shipped .gz files are checked against their sha256 (the folders' SHA256SUMS / READMEs) on
every load; `unlabeled.review`, with no published sum, is read unchecked.
"""

from __future__ import annotations

import gzip
import html
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.domains._offline import sha256_of, verify_files
from jtl.domains.base import LoadContext
from jtl.domains.text import CONTROL_CHARS, Texts, clean, text_domain
from jtl.errors import JtlError

log = logging.getLogger("jtl")

CORPORA = ("amazon_mdsd", "webis_cls10")
MDSD_DIR = "text/amazon_mdsd/sorted_data_acl"
MDSD_PRODUCTS = {"books": "books", "dvd": "dvd", "electronics": "electronics",
                 "kitchen": "kitchen_&_housewares"}
CLS_DIR = "text/webis_cls10"
CLS_LANGS = ("en", "de", "fr", "jp")
CLS_PRODUCTS = ("books", "dvd", "music")
CLASS_NAMES = ("negative", "positive")

# sha256 of the .gz files (shared/data/text/*/SHA256SUMS), relative to the data folder.
_MDSD = {
    "books/negative": "57c0e82f005e8776bb036a45641bb4df7df5fe2ae55edcf2f6ad284395ec08fb",
    "books/positive": "9205b82e8fcf387e1277ea1b55744df1ce7622d3938ef47aed69c105584bffae",
    "dvd/negative": "3c3c9bdd5715d713a417abc6a5ace130472d8b3f98d68f9c52dbd368817ad329",
    "dvd/positive": "a948caa1b04817df7f35c49b26e61e21866fb6121d4030162ee8037c07bd3931",
    "electronics/negative": "8679b1d46bad878e2d0395b73e05299fc5a82d2c70efe6359f21c74092490615",
    "electronics/positive": "f64400ee96e2d9340ae1c3c078e522e58131817c32d3871ea6fc8576802ce1ea",
    "kitchen_&_housewares/negative":
        "363ca12af98e6735f9f71371791cf5053220ee8917d601aab484ff8e90871ac5",
    "kitchen_&_housewares/positive":
        "154069ecc291f01e275c4c3202d6194b4651c6acc0ab4e835581489726dd5301",
}
_CLS = {
    "de/books/test": "7f6883718efde4b09da6db80b437f9f798888d3f948475efd68b1bdde66cfb8c",
    "de/books/train": "bcf1780338be7b3dcc6cd8222fda270b47057ebc998ed426270e1dbe82be44fe",
    "de/dvd/test": "d730c7dc7d8bdfef8aeec58ba5eb41412df6b51b7d278ddf591c09183887b501",
    "de/dvd/train": "edd08825a497bcf85b4d53e873fa61d73810e9071b334b5cb0f4a681b4de7836",
    "de/music/test": "e0c1421083af8be7202d876e412995044aa636ebba6014aa1e660cccdf40233d",
    "de/music/train": "e9922812775fd3ad69910a1b954cc36f5835fcfed5fcf4e741b0abc30e5cf879",
    "en/books/test": "6bfa41bb7fb6706233c1e9ae9bbc7a0fbb20cccd60c3531a3879cc89b831bf91",
    "en/books/train": "fcba5e698be78ed7c91e686f4604621540af651bce9faf83f751848ea7e13c1f",
    "en/dvd/test": "3771df75c606ac6ba34f2c9958a074cf3a39c9fc1ee14d5c58b3090b9635b6e2",
    "en/dvd/train": "36f4b49579bfeec81d74b3266c236efe61bc23305915cc543b9914542930ec81",
    "en/music/test": "8b823ab11f7b2affde1efef5b351120491e6b84ccb9f35cedbeaa68e7143d973",
    "en/music/train": "d57b87978533fbf791a95e8a5f90f42b38d4f417045b0271e50ee9427e1b1993",
    "fr/books/test": "fef33957be8cca2145eea2e39a0b6819ccd7c0e53a16b230521e810d39477770",
    "fr/books/train": "3efbfe1f207abbdd6c5733c354be95d744caee0a01b6a93296e3a14ee0ed2a08",
    "fr/dvd/test": "24a833b14ec205134503c92a2d53b676ed80d583e680939322d2cb1ac2a5ec21",
    "fr/dvd/train": "c9505162987f69d70f0686d16da090d49a316c51d96a268e0d36211aed80a865",
    "fr/music/test": "fd183b96c42906161b9ab91fd0b886b1b41d4a9fcf8d8348d589156f7126424c",
    "fr/music/train": "059c2e7aa2b16c7daf8ec9bf5f71c0e705f302b6f051c503a0b581a0bd63f0f5",
    "jp/books/test": "4495652ef6e9c46a742bac50f54b6400cf340343f4b9eb6e9f2b7be7601299ad",
    "jp/books/train": "4c47dd616b097023ff079fa69f65403f23014136f8532b64a71e907b0e0825aa",
    "jp/dvd/test": "ca3b29b65088939a814b28391787fd22b520906db9cf02215cebbff23d88c00a",
    "jp/dvd/train": "435bcbeedd433000631a0ba63da697e96459ef7a04070a668cd4605c96a496d2",
    "jp/music/test": "10eeb9d2320a8b6670eceb42c3b7a8862f38813ffd39382c97e62071f463816a",
    "jp/music/train": "e47cd66fae0cedb2c4cf67e7c12c2ac586d73261773e4bd7cf73787839fe1d16",
}
FILES = {**{f"{MDSD_DIR}/{k}.review.gz": v for k, v in _MDSD.items()},
         **{f"{CLS_DIR}/{k}.review.gz": v for k, v in _CLS.items()}}

_OPEN = re.compile(r"^<([A-Za-z_][\w.-]*)>$")
_CLOSE = re.compile(r"^</([A-Za-z_][\w.-]*)>$")


def _read(path: Path) -> str:
    """A .review or .review.gz file as text (UTF-8; an undecodable byte becomes U+FFFD)."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.decode("utf-8", errors="replace")


def parse_blitzer(text: str) -> list[dict[str, str]]:
    """Blitzer's pseudo-XML: `<review>` blocks of `<tag>` / value lines / `</tag>`.

    Tolerant: a tag opened while another is open closes it (an unclosed tag), `</review>`
    or a new `<review>` closes the block, control characters become spaces, HTML entities
    (`&quot;`) are decoded and a bare `&` stays as it is. Lines outside any tag are ignored.
    """
    reviews: list[dict[str, str]] = []
    review: dict[str, list[str]] | None = None
    field: str | None = None

    def close() -> None:
        if review is not None:
            reviews.append({k: clean(html.unescape("\n".join(v))) for k, v in review.items()})

    # Control characters first (str.splitlines would break a line at \x0b, \x0c, \x1c..):
    for raw in text.translate(CONTROL_CHARS).split("\n"):
        raw = raw.rstrip("\r")
        line = raw.strip()
        if line == "<review>":
            close()
            review, field = {}, None
        elif line == "</review>":
            close()
            review, field = None, None
        elif review is None:
            continue
        elif m := _OPEN.match(line):
            field = m.group(1)
            review.setdefault(field, [])
        elif m := _CLOSE.match(line):
            field = None
        elif field is not None:
            review[field].append(raw)
    close()
    return reviews


def parse_cls10(text: str) -> list[dict[str, str]]:
    """Webis-CLS-10's XML (`<items><item><rating>..</rating><text>..</text>..</item>`);
    with control characters or broken markup, the same fields read by a tolerant scan."""
    text = clean(text)
    try:
        root = ET.fromstring(text)
        return [{c.tag: clean(c.text or "") for c in item} for item in root.iter("item")]
    except ET.ParseError:
        pass
    items = []
    body = text.split("<items>", 1)[-1]
    for block in re.split(r"<item>", body)[1:]:
        block = block.split("</item>", 1)[0]
        fields = {}
        for m in re.finditer(r"<([A-Za-z_]\w*)>(.*?)(?=</\1>|<[A-Za-z_]\w*\s*/?>|$)", block,
                             re.S):
            fields.setdefault(m.group(1), clean(html.unescape(m.group(2))))
        items.append(fields)
    return items


def _rating(r: Mapping[str, str]) -> float | None:
    try:
        return float(r.get("rating", ""))
    except ValueError:
        return None


def label_of_rating(rating: float | None) -> int | None:
    """> 3 positive (1), < 3 negative (0); 3 or none: no label (dropped)."""
    if rating is None or rating == 3:
        return None
    return int(rating > 3)


def _text(r: Mapping[str, str], title_key: str, text_key: str, with_title: bool) -> str:
    parts = [r.get(title_key, "")] if with_title else []
    return "\n".join(p for p in [*parts, r.get(text_key, "")] if p)


def _collect(reviews: list[dict[str, str]], labels: list[int | None], title_key: str,
             text_key: str, with_title: bool, where: str, dropped: list[str]
             ) -> tuple[list[str], np.ndarray]:
    texts, ys, empty, unrated = [], [], 0, 0
    for r, y in zip(reviews, labels, strict=True):
        t = _text(r, title_key, text_key, with_title)
        if not t:
            empty += 1
        elif y is None:
            unrated += 1
        else:
            texts.append(t)
            ys.append(y)
    if empty or unrated:
        dropped.append(f"{where}: {empty} without text, {unrated} without a rating > 3 or < 3")
    return texts, np.asarray(ys, np.int64)


def _file(ctx: LoadContext, rel: str, checked: dict[str, str]) -> Path:
    path = Path(ctx.data_dir) / rel
    if rel in FILES:
        verify_files(ctx.data_dir, {rel: FILES[rel]})
        checked[str(path)] = FILES[rel]
    elif path.is_file():
        checked[str(path)] = sha256_of(path)
    else:
        raise JtlError(f"{path} is missing: this copy of the data set has no such file (see "
                       f"its README.md); leave the key that asks for it at its default")
    return path


@text_domain("reviews")
def read_reviews(cfg: Mapping[str, Any], ctx: LoadContext) -> Texts:
    """Keys: corpus (amazon_mdsd | webis_cls10), product, lang (webis_cls10), with_title,
    test (amazon_mdsd: held_out | unlabeled), train (webis_cls10: train | unlabeled)."""
    corpus = cfg.get("corpus", "amazon_mdsd")
    with_title = bool(cfg.get("with_title", True))
    files: dict[str, str] = {}
    dropped: list[str] = []
    if corpus == "amazon_mdsd":
        product = cfg.get("product", "books")
        if product not in MDSD_PRODUCTS:
            raise JtlError(f"product={product!r}: one of {list(MDSD_PRODUCTS)} for "
                           f"corpus=amazon_mdsd")
        test = cfg.get("test", "held_out")
        if test not in ("held_out", "unlabeled"):
            raise JtlError(f"test={test!r}: held_out (test_fraction of the labeled reviews) "
                           f"or unlabeled (unlabeled.review, by rating)")
        folder = f"{MDSD_DIR}/{MDSD_PRODUCTS[product]}"
        texts: list[str] = []
        ys = []
        for name, y in (("positive", 1), ("negative", 0)):
            path = _file(ctx, f"{folder}/{name}.review.gz", files)
            reviews = parse_blitzer(_read(path))
            t, yy = _collect(reviews, [y] * len(reviews), "title", "review_text", with_title,
                             path.name, dropped)
            texts += t
            ys.append(yy)
        y_tr = np.concatenate(ys)
        te = y_te = None
        if test == "unlabeled":
            rel = next((f"{folder}/unlabeled.review{s}" for s in (".gz", "")
                        if (Path(ctx.data_dir) / f"{folder}/unlabeled.review{s}").is_file()),
                       f"{folder}/unlabeled.review")
            path = _file(ctx, rel, files)
            reviews = parse_blitzer(_read(path))
            te, y_te = _collect(reviews, [label_of_rating(_rating(r)) for r in reviews],
                                "title", "review_text", with_title, path.name, dropped)
        out = Texts(train=texts, y_train=y_tr, test=te, y_test=y_te, num_classes=2,
                    class_names=CLASS_NAMES, files=files)
    elif corpus == "webis_cls10":
        lang, product = cfg.get("lang", "en"), cfg.get("product", "books")
        if lang not in CLS_LANGS or product not in CLS_PRODUCTS:
            raise JtlError(f"lang={lang!r}, product={product!r}: lang one of {list(CLS_LANGS)}, "
                           f"product one of {list(CLS_PRODUCTS)} for corpus=webis_cls10")
        train = cfg.get("train", "train")
        if train not in ("train", "unlabeled"):
            raise JtlError(f"train={train!r}: train (train.review, labeled) or unlabeled "
                           f"(unlabeled.review as an unlabeled train split)")
        split = {}
        for part, stem in (("train", train), ("test", "test")):
            path = _file(ctx, f"{CLS_DIR}/{lang}/{product}/{stem}.review.gz"
                         if stem != "unlabeled" else _unlabeled(ctx, lang, product), files)
            items = parse_cls10(_read(path))
            labels = ([0] * len(items) if stem == "unlabeled" else
                      [label_of_rating(_rating(r)) for r in items])
            split[part] = _collect(items, labels, "summary", "text", with_title,
                                   f"{lang}/{product}/{path.name}", dropped)
        out = Texts(train=split["train"][0], y_train=split["train"][1], test=split["test"][0],
                    y_test=split["test"][1], num_classes=2, class_names=CLASS_NAMES,
                    labels="test" if train == "unlabeled" else "all", files=files)
    else:
        raise JtlError(f"corpus={corpus!r}: one of {list(CORPORA)}")
    if dropped:
        log.warning("reviews: dropped %s", "; ".join(dropped))
    return out


def _unlabeled(ctx: LoadContext, lang: str, product: str) -> str:
    rel = f"{CLS_DIR}/{lang}/{product}/unlabeled.review"
    return rel + ".gz" if (Path(ctx.data_dir) / f"{rel}.gz").is_file() else rel
