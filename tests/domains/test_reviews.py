"""The raw review readers on small hand-made files, one quirk each, and on the shipped data."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pytest
from domain_testkit import DATA_DIR

from jtl.domains import reviews
from jtl.domains._offline import sha256_of
from jtl.domains.base import LoadContext, build_domain
from jtl.domains.reviews import parse_blitzer, parse_cls10
from jtl.errors import JtlError

BLITZER_POS = """<review>
<unique_id>
A1
</unique_id>
<rating>
5.0
</rating>
<title>
Great \x0bbook
</title>
<review_text>
Tom &amp; Jerry &quot;rock&quot; & roll
</review_text>
</review>
<review>
<rating>
4.0
</rating>
<title>
Unclosed title
<review_text>
text after an unclosed tag
</review_text>
</review>
<review>
<title>
</title>
<review_text>

</review_text>
</review>
<review>
<title>
title only
</title>
<review_text>
</review_text>
</review>
"""
BLITZER_NEG = """<review>
<title>
Bad
</title>
<review_text>
awful, never again
</review_text>
<review>
<title>
second without a closing review tag
</title>
<review_text>
boring
</review_text>
"""
CLS_TRAIN = """<?xml version="1.0" encoding="utf-8"?>
<items><item><rating>5.0</rating><summary>Super</summary>
<text>Tr\x01es bien &amp; beau</text></item>
<item><rating>1.0</rating><summary>Nul</summary><text>ennuyeux</text></item>
<item><rating>3.0</rating><summary>Bof</summary><text>moyen</text></item>
<item><rating>2.0</rating><summary>Unclosed<text>mauvais</text></item>
</items>"""
CLS_TEST = """<?xml version="1.0" encoding="utf-8"?>
<items><item><rating>4.0</rating><summary>ok</summary><text /></item>
<item><rating>2.0</rating><summary></summary><text>pas bien</text></item></items>"""


def test_blitzer_quirks_control_characters_entities_unclosed_tags_empty_text():
    pos = parse_blitzer(BLITZER_POS)
    assert len(pos) == 4
    assert pos[0]["title"] == "Great  book"  # a control character becomes a space
    assert pos[0]["review_text"] == 'Tom & Jerry "rock" & roll'  # entities, and a bare &
    assert pos[1]["title"] == "Unclosed title"  # closed by the next tag
    assert pos[1]["review_text"] == "text after an unclosed tag"
    assert pos[2] == {"title": "", "review_text": ""}
    neg = parse_blitzer(BLITZER_NEG)
    assert [r["review_text"] for r in neg] == ["awful, never again", "boring"]


def test_cls10_well_formed_and_tolerant():
    items = parse_cls10(CLS_TEST)  # well formed: ElementTree
    assert items == [{"rating": "4.0", "summary": "ok", "text": ""},
                     {"rating": "2.0", "summary": "", "text": "pas bien"}]
    items = parse_cls10(CLS_TRAIN)  # an unclosed <summary>: the tolerant scan
    assert [i["rating"] for i in items] == ["5.0", "1.0", "3.0", "2.0"]
    assert items[0]["text"] == "Tr es bien & beau"
    assert items[3]["summary"] == "Unclosed" and items[3]["text"] == "mauvais"


def _gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))


@pytest.fixture()
def fake_reviews(tmp_path, monkeypatch) -> LoadContext:
    """Hand-made files where the real ones live, their sums the checksum gate's."""
    d = tmp_path / "data"
    files = {f"{reviews.MDSD_DIR}/books/positive.review.gz": BLITZER_POS,
             f"{reviews.MDSD_DIR}/books/negative.review.gz": BLITZER_NEG,
             f"{reviews.CLS_DIR}/fr/dvd/train.review.gz": CLS_TRAIN,
             f"{reviews.CLS_DIR}/fr/dvd/test.review.gz": CLS_TEST}
    for rel, text in files.items():
        _gz(d / rel, text)
    monkeypatch.setattr(reviews, "FILES", {rel: sha256_of(d / rel) for rel in files})
    return LoadContext(data_dir=d, tfds_dir=tmp_path / "tfds")


def test_blitzer_labels_from_the_files_and_empty_reviews_dropped(fake_reviews, caplog):
    with caplog.at_level(logging.WARNING, "jtl"):
        t = reviews.read_reviews({"corpus": "amazon_mdsd", "product": "books"}, fake_reviews)
    assert t.train == ["Great  book\nTom & Jerry \"rock\" & roll",
                       "Unclosed title\ntext after an unclosed tag", "title only",
                       "Bad\nawful, never again",
                       "second without a closing review tag\nboring"]
    np.testing.assert_array_equal(t.y_train, [1, 1, 1, 0, 0])
    assert t.test is None and not t.stratified and t.class_names == ("negative", "positive")
    assert "positive.review.gz: 1 without text" in caplog.text  # one line says what was dropped
    t = reviews.read_reviews({"corpus": "amazon_mdsd", "product": "books",
                              "with_title": False}, fake_reviews)
    assert t.train[0] == 'Tom & Jerry "rock" & roll'


def test_cls10_labels_from_the_rating(fake_reviews):
    t = reviews.read_reviews({"corpus": "webis_cls10", "lang": "fr", "product": "dvd"},
                             fake_reviews)
    assert t.train == ["Super\nTr es bien & beau", "Nul\nennuyeux", "Unclosed\nmauvais"]
    np.testing.assert_array_equal(t.y_train, [1, 0, 0])  # 3.0 dropped: neither > 3 nor < 3
    assert t.test == ["ok", "pas bien"]  # an empty <text />: the summary alone
    np.testing.assert_array_equal(t.y_test, [1, 0])


def test_a_changed_file_and_missing_unlabeled_file_are_one_line(fake_reviews, monkeypatch):
    rel = f"{reviews.MDSD_DIR}/books/positive.review.gz"
    monkeypatch.setitem(reviews.FILES, rel, "0" * 64)
    with pytest.raises(JtlError, match="corrupt"):
        reviews.read_reviews({"corpus": "amazon_mdsd", "product": "books"}, fake_reviews)
    with pytest.raises(JtlError, match="missing"):
        reviews.read_reviews({"corpus": "webis_cls10", "lang": "fr", "product": "dvd",
                              "train": "unlabeled"}, fake_reviews)


def test_blitzer_unlabeled_review_is_the_test_split_by_rating(fake_reviews):
    folder = Path(fake_reviews.data_dir) / reviews.MDSD_DIR / "books"
    (folder / "unlabeled.review").write_text(
        "<review>\n<rating>\n2.0\n</rating>\n<review_text>\nmeh\n</review_text>\n</review>\n"
        "<review>\n<rating>\n3.0\n</rating>\n<review_text>\nso so\n</review_text>\n</review>\n"
        "<review>\n<rating>\n5.0\n</rating>\n<review_text>\nyes\n</review_text>\n</review>\n")
    t = reviews.read_reviews({"corpus": "amazon_mdsd", "product": "books",
                              "test": "unlabeled"}, fake_reviews)
    assert t.test == ["meh", "yes"]
    np.testing.assert_array_equal(t.y_test, [0, 1])


@pytest.mark.parametrize("cfg, counts", [
    ({"corpus": "amazon_mdsd", "product": "kitchen"}, (2000, None)),
    ({"corpus": "webis_cls10", "lang": "jp", "product": "books"}, (2000, 2000)),
])
def test_the_shipped_files_read_whole_and_balanced(cfg, counts):
    ctx = LoadContext(data_dir=DATA_DIR, tfds_dir=Path("/nonexistent"))
    t = reviews.read_reviews(cfg, ctx)
    assert (len(t.train), None if t.test is None else len(t.test)) == counts
    assert t.y_train.mean() == 0.5 and all(t.train)
    assert all("\x0b" not in s and "\x0c" not in s for s in t.train)


def test_a_reviews_domain_needs_a_featurizer(fake_reviews):
    with pytest.raises(JtlError, match="needs a featurizer"):
        build_domain({"name": "reviews", "corpus": "amazon_mdsd", "product": "books"}, (1,),
                     fake_reviews)
