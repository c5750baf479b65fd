"""The `text` domain (CSV / TSV / JSONL), tokenization against the reference ids, and the
bag-of-words featurizer (its vocabulary never reads a test split)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from domain_testkit import DATA_DIR

from jtl.domains import bow
from jtl.domains.base import LoadContext, build_domain
from jtl.domains.text import read_text
from jtl.errors import JtlError
from jtl.models.bert import fetch

REFERENCE = DATA_DIR.parent / "models" / "minilm_reference.npz"
needs_minilm = pytest.mark.skipif(not fetch.is_cached(),
                                  reason="all-MiniLM-L6-v2 not fetched (make models)")


@pytest.fixture()
def ctx(tmp_path) -> LoadContext:
    return LoadContext(data_dir=tmp_path, tfds_dir=tmp_path / "tfds")


def _domain(ctx: LoadContext, **keys) -> dict:
    return {"name": "text", "val_fraction": 0.0, **keys}


def test_csv_tsv_jsonl_and_bad_rows_reported_in_one_line(tmp_path, ctx, caplog):
    (tmp_path / "a.csv").write_text('text,label\n"good, really",pos\n,neg\nbad,neg\n'
                                    'only one field\nfine,\n')
    (tmp_path / "b.tsv").write_text("label\ttext\n1\tja gut\n0\tnein\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "oui", "label": 1}) + "\n{oops\n"
                                      + json.dumps({"text": "non", "label": 0}) + "\n[1]\n")
    with caplog.at_level(logging.WARNING, "jtl"):
        t = read_text({"path": "a.csv"}, ctx)
    assert t.train == ["good, really", "bad"] and t.class_names == ("neg", "pos")
    np.testing.assert_array_equal(t.y_train, [1, 0])
    lines = [r.message for r in caplog.records]
    assert len(lines) == 1 and "3 bad row(s) of 5" in lines[0]
    assert "line 3: empty text" in lines[0] and "line 5: 1 fields" in lines[0]
    with pytest.raises(JtlError, match="bad row"):
        read_text({"path": "a.csv", "bad_rows": "error"}, ctx)
    t = read_text({"path": "b.tsv"}, ctx)
    assert t.train == ["ja gut", "nein"] and t.class_names == ()
    np.testing.assert_array_equal(t.y_train, [1, 0])
    t = read_text({"path": "c.jsonl"}, ctx)
    assert t.train == ["oui", "non"]


def test_encodings(tmp_path, ctx):
    (tmp_path / "l1.csv").write_bytes("text,label\ntrès bien,1\nnul,0\n".encode("latin-1"))
    with pytest.raises(JtlError, match=r"not utf-8-sig .*line 2.*encoding=latin-1"):
        read_text({"path": "l1.csv"}, ctx)
    assert read_text({"path": "l1.csv", "encoding": "latin-1"}, ctx).train[0] == "très bien"
    (tmp_path / "bom.csv").write_bytes("text,label\nok,1\n".encode("utf-8-sig"))
    assert read_text({"path": "bom.csv"}, ctx).train == ["ok"]  # the BOM is not in 'text'
    (tmp_path / "u16.csv").write_bytes("text,label\nok,1\n".encode("utf-16"))
    assert read_text({"path": "u16.csv", "encoding": "utf-16"}, ctx).train == ["ok"]


def test_no_label_column_is_an_unlabeled_train_split(tmp_path, ctx):
    (tmp_path / "pool.csv").write_text("text\nx y\nz\n")
    (tmp_path / "test.csv").write_text("text,label\nx,a\nz,b\n")
    t = read_text({"path": "pool.csv", "test_path": "test.csv"}, ctx)
    assert t.labels == "test" and t.class_names == ("a", "b")
    with pytest.raises(JtlError, match="needs a labeled test_path"):
        read_text({"path": "pool.csv"}, ctx)


def test_analyzer_words_bigrams_and_cjk_character_bigrams():
    assert bow.analyze("Not GOOD, not bad.", 2) == ["not", "good", "not", "bad", "not good",
                                                    "good not", "not bad"]
    assert bow.analyze("とても良い本", 1) == ["とて", "ても", "も良", "良い", "い本"]
    assert bow.analyze("DVDは最高", 1) == ["dvd", "は最", "最高"]


def test_vocabulary_is_top_k_by_count_and_vectors_count_or_mark():
    vocab = bow.vocabulary(["b a a", "c b a"], 2, ngrams=1)
    assert vocab == ["a", "b"]  # a: 3, b: 2, c: 1
    np.testing.assert_array_equal(bow.vectorize(["a a c", "b"], vocab, 1), [[2, 0], [0, 1]])
    np.testing.assert_array_equal(bow.vectorize(["a a c"], vocab, 1, binary=True), [[1, 0]])


def test_the_bow_vocabulary_never_reads_a_target_test_text(tmp_path, ctx):
    """Each row carries a word of its own: the vocabulary (top_k larger than every term) holds
    the words of the target's train rows and of none of its held-out test rows."""
    rows = [f"w{i} {'good' if i % 2 else 'bad'}" for i in range(50)]
    (tmp_path / "src.csv").write_text("text,label\n" + "".join(f"s{r},{i % 2}\n"
                                                                for i, r in enumerate(rows)))
    (tmp_path / "tgt.csv").write_text("text,label\n" + "".join(f"t{r},{i % 2}\n"
                                                                for i, r in enumerate(rows)))
    src, tgt = _domain(ctx, path="src.csv"), _domain(ctx, path="tgt.csv")
    cfg = {"text_features": {"name": "bow", "top_k": 10_000, "ngrams": 1}}
    keys = bow.resolve(cfg, ctx, [("source", src), ("target", tgt), ("eval[0]", tgt)])
    assert set(keys) == {"source", "target", "eval[0]"}
    vocab = set(bow.read_vocabulary(keys["target"]["vocabulary"], ctx))
    target = build_domain({**tgt, **keys["target"]}, (1,), ctx)
    assert target.train.stored.shape[1] == len(vocab)
    target_words = {f"t{r.split()[0]}" for r in rows}
    # The target words missing from the vocabulary: one per held-out test row, and each test
    # row's vector counts good/bad only, its own word not a feature; every train row has both.
    assert len(target_words - vocab) == len(target.test) == 10
    assert (target.test.stored.sum(axis=1) == 1).all()
    assert (target.train.stored.sum(axis=1) == 2).all()
    assert sum(f"s{r.split()[0]}" in vocab for r in rows) == 40  # the source's test rows too
    assert {"good", "bad"} <= vocab


@needs_minilm
def test_tokens_match_the_reference_ids(tmp_path, ctx):
    """The four reference sentences through a text domain: the ids and mask of the PyTorch
    reference (padded to the longest, 28), and padded on to max_length 128 with zeros."""
    with np.load(REFERENCE) as ref:
        sentences, ids, mask = ref["sentences"], ref["input_ids"], ref["attention_mask"]
    (tmp_path / "ref.jsonl").write_text("".join(json.dumps({"text": str(s), "label": i % 2})
                                                + "\n" for i, s in enumerate(sentences)))
    keys = {"path": "ref.jsonl", "test_path": "ref.jsonl", "tokenizer": str(fetch.model_dir())}
    longest = build_domain(_domain(ctx, padding="longest", **keys), (1,), ctx).test
    np.testing.assert_array_equal(longest.fields["tokens"], ids)
    np.testing.assert_array_equal(longest.fields["mask"], mask)
    fixed = build_domain(_domain(ctx, **keys), (1,), ctx).test  # padding max_length, 128
    assert fixed.fields["tokens"].dtype == np.int32 and fixed.fields["tokens"].shape == (4, 128)
    np.testing.assert_array_equal(fixed.fields["tokens"][:, :28], ids)
    assert not fixed.fields["tokens"][:, 28:].any() and not fixed.fields["mask"][:, 28:].any()
    cached = list((Path(ctx.tfds_dir).parent / "text").glob("tokens-*.npz"))
    assert len(cached) == 2  # one per (tokenizer, settings, texts)
    again = build_domain(_domain(ctx, **keys), (1,), ctx).test
    np.testing.assert_array_equal(again.fields["tokens"], fixed.fields["tokens"])
    with pytest.raises(JtlError, match="longer than max_length=8"):
        build_domain(_domain(ctx, max_length=8, truncation=False, **keys), (1,), ctx)
    short = build_domain(_domain(ctx, max_length=8, **keys), (1,), ctx).test
    assert short.fields["tokens"].shape == (4, 8) and (short.fields["tokens"][:, -1] == 102).all()


def test_a_missing_tokenizer_is_one_line(tmp_path, ctx):
    (tmp_path / "a.csv").write_text("text,label\nx,0\ny,1\n")
    with pytest.raises(JtlError, match=r"no tokenizer\.json"):
        build_domain(_domain(ctx, path="a.csv", test_path="a.csv",
                             tokenizer=str(tmp_path / "nowhere")), (1,), ctx)
