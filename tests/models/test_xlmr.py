"""XLM-R / RoBERTa and BERT checkpoints saved by `transformers` load into jtl's BERT and give
its last hidden state (fixtures: tests/fixtures/xlmr/make_reference.py, tiny random models)."""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl.errors import JtlError
from jtl.methods import METHODS
from jtl.models import build_network
from jtl.models.bert.modeling import BertConfig, position_ids
from jtl.models.bert.params import from_pretrained
from jtl.models.pretrained import load

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "xlmr"
REF = np.load(FIX / "reference.npz")
TOL = 5e-5


def network(folder: Path, length: int = 12, **model):
    cfg = {"name": "bert", "input_shape": [length], "weights": str(folder), **model}
    net = build_network(cfg, 2, METHODS.get("source_only")(), seed=0)
    graphdef, params = nnx.split(net)
    params, summary = load(params.to_pure_dict(), str(folder), type(net.backbone))
    return nnx.merge(graphdef, params), summary


@pytest.mark.parametrize("name, ref", [("xlmr", "xlmr_hidden"), ("xlmr_cls", "xlmr_cls_hidden"),
                                       ("bert", "bert_hidden")])
def test_last_hidden_state_matches_transformers(name, ref):
    kind = "bert" if name == "bert" else "xlmr"
    ids, mask = REF[f"{kind}_ids"], REF[f"{kind}_mask"]
    net, summary = network(FIX / name)
    got = np.asarray(net.backbone.maps({"tokens": jnp.asarray(ids), "mask": jnp.asarray(mask)}))
    assert np.abs(got - REF[ref]).max() <= TOL  # every position, padding included
    model, _ = from_pretrained(FIX / name)  # the module API agrees
    hidden, _ = model(jnp.asarray(ids), jnp.asarray(mask))
    assert np.abs(np.asarray(hidden) - REF[ref]).max() <= TOL
    assert summary["new"] == ["head/bias", "head/kernel"]
    assert summary["loaded"] == 2 * 16 + 5  # word/pos/type + LN, and 16 per layer


def test_roberta_positions_start_after_padding_idx_and_padding_reads_its_row():
    cfg = BertConfig.from_hf(json.loads((FIX / "xlmr" / "config.json").read_text()))
    assert cfg.positions == "roberta" and cfg.max_length == 40 - 2
    tokens = jnp.asarray([[0, 5, 7, 2, 1, 1]])
    assert position_ids(tokens, cfg).tolist() == [[2, 3, 4, 5, 1, 1]]
    bert = BertConfig.from_hf(json.loads((FIX / "bert" / "config.json").read_text()))
    assert position_ids(tokens, bert).tolist() == [[0, 1, 2, 3, 4, 5]]


def test_classifier_and_pooler_are_reported_ignored():
    _, summary = network(FIX / "xlmr_cls")
    assert any(k.startswith("classifier.") for k in summary["ignored"])
    _, summary = network(FIX / "xlmr")
    assert summary["ignored"] == ["pooler.dense.bias", "pooler.dense.weight"]


def test_a_shape_mismatch_names_the_checkpoint_key(tmp_path):
    cfg = json.loads((FIX / "xlmr" / "config.json").read_text()) | {"vocab_size": 50}
    (tmp_path / "config.json").write_text(json.dumps(cfg))  # a config.json that lies
    (tmp_path / "model.safetensors").write_bytes((FIX / "xlmr" / "model.safetensors").read_bytes())
    with pytest.raises(JtlError, match=r"embeddings\.word_embeddings\.weight"):
        network(tmp_path)


def test_a_sequence_longer_than_the_positions_is_one_line():
    with pytest.raises(JtlError, match="38 positions"):
        network(FIX / "xlmr", length=39)
