"""model=bert as a jtl backbone: blocks addressable by freeze_k / keep_blocks, pooling, the
model contract (reads tokens), and a trainer run on a tiny synthetic text domain."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl.errors import JtlError
from jtl.methods import METHODS
from jtl.models import build_network, param_paths
from jtl.models.bert.modeling import mean_pool
from jtl.transfer import Recipe
from tests.conftest import compose_cfg

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "xlmr"
TINY = {"vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 16, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12}
X = {"tokens": jnp.asarray([[5, 6, 7, 0], [8, 9, 0, 0]]), "mask": jnp.asarray([[1, 1, 1, 0],
                                                                               [1, 1, 0, 0]])}


def net(keep_blocks=None, **model):
    cfg = {"name": "bert", "input_shape": [4], "config": TINY, **model}
    return build_network(cfg, 3, METHODS.get("dann")(), seed=0, keep_blocks=keep_blocks)


def test_blocks_are_the_embeddings_then_each_layer_and_freeze_k_addresses_them():
    n = net()
    assert len(n.backbone.blocks) == 3 and n.backbone.reads == ("tokens",)
    paths = param_paths(nnx.split(n)[1].to_pure_dict())
    assert "backbone/blocks/0/word/embedding" in paths
    assert "backbone/blocks/2/attention/query/kernel" in paths
    frozen = Recipe(freeze_k=1).freeze(None, 3)
    hit = [p for p in paths if re.fullmatch(frozen, p)]
    assert hit and all(p.startswith("backbone/blocks/0/") for p in hit)


def test_pooling_mean_cls_and_keep_blocks():
    n = net()
    h = n.backbone.maps(X)
    np.testing.assert_allclose(n.features(X), mean_pool(h, X["mask"]), atol=1e-6)
    np.testing.assert_allclose(net(pooling="cls").features(X), h[:, 0], atol=1e-6)
    # padding never changes a real token's feature: same text, more padding
    longer = {k: jnp.pad(v, ((0, 0), (0, 3))) for k, v in X.items()}
    np.testing.assert_allclose(n.features(longer), n.features(X), atol=1e-5)
    cut = net(keep_blocks=2)  # embeddings + layer 0
    assert len(cut.backbone.blocks) == 2
    ref = n.backbone.blocks[1](n.backbone.blocks[0](X["tokens"], jnp.zeros_like(X["tokens"]),
                                                    None),
                               jnp.where(X["mask"][:, None, None, :] > 0, 0.0,
                                         jnp.finfo(jnp.float32).min), None)
    np.testing.assert_allclose(cut.backbone.maps(X), ref, atol=1e-6)
    with pytest.raises(JtlError, match="keep_blocks"):
        net(keep_blocks=4)


def test_config_errors_are_one_line():
    with pytest.raises(JtlError, match=r"model\.weights .* or model\.config"):
        build_network({"name": "bert", "input_shape": [4], "config": None}, 2,
                      METHODS.get("dann")(), seed=0)
    with pytest.raises(JtlError, match="pooling"):
        net(pooling="max")


def test_presets_compose():
    cfg = compose_cfg(["model=minilm"])
    assert cfg.model.name == "bert" and cfg.model.weights.endswith("all-MiniLM-L6-v2")


def random_bert_folder(folder: Path, vocab: int = 30522) -> Path:
    """A Hugging Face BERT folder of random weights (BertModel's keys, a pooler): MiniLM's
    vocabulary size, so its tokenizer's ids are in range; 2 layers of width 16."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    cfg = {**TINY, "vocab_size": vocab, "max_position_embeddings": 16, "model_type": "bert"}
    h, f = cfg["hidden_size"], cfg["intermediate_size"]
    shapes = {"embeddings.word_embeddings.weight": (vocab, h),
              "embeddings.position_embeddings.weight": (16, h),
              "embeddings.token_type_embeddings.weight": (2, h),
              "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,),
              "pooler.dense.weight": (h, h), "pooler.dense.bias": (h,)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            shapes |= {p + f"attention.self.{name}.weight": (h, h),
                       p + f"attention.self.{name}.bias": (h,)}
        shapes |= {p + "attention.output.dense.weight": (h, h),
                   p + "attention.output.dense.bias": (h,),
                   p + "attention.output.LayerNorm.weight": (h,),
                   p + "attention.output.LayerNorm.bias": (h,),
                   p + "intermediate.dense.weight": (f, h), p + "intermediate.dense.bias": (f,),
                   p + "output.dense.weight": (h, f), p + "output.dense.bias": (h,),
                   p + "output.LayerNorm.weight": (h,), p + "output.LayerNorm.bias": (h,)}
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: (0.02 * rng.standard_normal(s)).astype(np.float32) + np.float32(
        k.endswith("LayerNorm.weight")) for k, s in shapes.items()},
        str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def text_run(tmp_path: Path, *overrides: str) -> dict:
    """A trainer run on a synthetic two-class text CSV (source = target, 32 texts), MiniLM's
    tokenizer, a random BERT folder loaded by model.weights."""
    from jtl.models.bert.fetch import model_dir
    from jtl.train.trainer import train_and_evaluate

    if not (model_dir() / "tokenizer.json").is_file():
        pytest.skip("no MiniLM tokenizer (python -m jtl.models.bert.fetch)")
    good, bad = ["good", "great", "fine", "nice"], ["bad", "awful", "poor", "dull"]
    rows = ["text,label", *(f"{good[i % 4]} {good[(i + 1) % 4]} {i},1" for i in range(16)),
            *(f"{bad[i % 4]} {bad[(i + 1) % 4]} {i},0" for i in range(16))]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    weights = random_bert_folder(tmp_path / "bert")
    dom = [f"path={tmp_path / 't.csv'}", "tokenizer=all-MiniLM-L6-v2", "max_length=8"]
    cfg = compose_cfg(["domain@source=text", "domain@target=text",
                       *(f"{r}.{d}" for r in ("source", "target") for d in dom),
                       "model=bert", "model.input_shape=[8]", f"model.weights={weights}",
                       "trainer=debug", "trainer.steps=4", "trainer.eval_every=2",
                       "trainer.batch_size=8", "trainer.progress=false",
                       "trainer.tensorboard=false", f"paths.tfds_dir={tmp_path / 'cache'}",
                       *overrides])
    return train_and_evaluate(cfg, tmp_path / "run")


@pytest.mark.slow  # two compilations of a BERT step, ~40 s on 2 idle cores
@pytest.mark.parametrize("overrides", [["method=dann"], ["method=source_only", "transfer=freeze_k",
                                                         "transfer.freeze_k=2"]])
def test_a_text_run_trains_on_the_loaded_bert(tmp_path, overrides):
    text_run(tmp_path, *overrides)
    summary = json.loads(next((tmp_path / "run").rglob("summary.json")).read_text())
    assert summary["status"] == "completed"
    w = summary["weights"]
    assert w["loaded"] == 37 and "head/kernel" in w["new"]
    assert w["ignored"] == ["pooler.dense.bias", "pooler.dense.weight"]
    assert np.isfinite(summary["target/test/accuracy"])


def test_token_ids_past_the_vocabulary_are_refused():
    """A tokenizer of another model (ids >= vocab_size) would be embedded as NaN rows in
    silence; the build refuses it, naming the domain and split."""
    from jtl.domains.base import Domain, Split
    from jtl.train.build import Roles, check_token_ids

    def dom(hi):
        tok = np.array([[1, 2, hi, 0]], np.int32)
        s = Split({"tokens": tok, "mask": (tok > 0).astype(np.int32),
                   "label": np.zeros(1, np.int32)})
        ok = Split({"tokens": tok * 0 + 3, "mask": tok * 0 + 1, "label": np.zeros(1, np.int32)})
        return Domain("reviews", ok, ok, s, 2)

    n = net()  # TINY: vocab_size 100
    check_token_ids(Roles((dom(99),), dom(99)), n, "bert")
    with pytest.raises(JtlError, match=r"target 'reviews' test has token ids 0\.\.100 .* 100"):
        check_token_ids(Roles((dom(99),), dom(100)), n, "bert")
    with pytest.raises(JtlError, match="source 'reviews' test"):
        check_token_ids(Roles((dom(-1),), dom(5)), n, "bert")
