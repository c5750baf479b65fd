"""The frozen-feature cache on text domains (jtl/train/features.py): a frozen BERT's pooled
output, computed once per row of tokens + mask. Cached features equal the uncached frozen
backbone's on the same tokens, a cached run trains only the neck, head and discriminator
(the backbone stays the checkpoint's), and the keys change with the tokenizer, the pooling
and the texts.

A random 2-layer width-16 BERT folder at MiniLM's vocabulary (tests/models/test_bert_backbone.py's
`random_bert_folder`), MiniLM's tokenizer, a synthetic two-class CSV, 8 tokens a text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf

from jtl.domains.pp import Pipeline
from jtl.errors import JtlError
from jtl.train import checkpoint as ckpt
from jtl.train import features
from jtl.train.build import build_all, initial_params
from jtl.train.step import stat_paths
from jtl.train.summary import num_params
from jtl.train.trainer import train_and_evaluate
from tests.conftest import compose_cfg
from tests.models.test_bert_backbone import random_bert_folder


@pytest.fixture(scope="module")
def tokenizer() -> Path:
    from jtl.models.bert.fetch import model_dir

    path = model_dir() / "tokenizer.json"
    if not path.is_file():
        pytest.skip("no MiniLM tokenizer (python -m jtl.models.bert.fetch)")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, tokenizer: Path) -> Path:
    """A two-class CSV (40 texts) and a random BERT folder."""
    root = tmp_path_factory.mktemp("text")
    good, bad = ["good", "great", "fine", "nice"], ["bad", "awful", "poor", "dull"]
    rows = ["text,label", *(f"{good[i % 4]} {good[(i + 1) % 4]} {i},1" for i in range(20)),
            *(f"{bad[i % 4]} {bad[(i + 1) % 4]} {i},0" for i in range(20))]
    (root / "t.csv").write_text("\n".join(rows) + "\n")
    random_bert_folder(root / "bert")
    return root


def overrides(data: Path, cache: Path, *extra: str) -> list[str]:
    dom = [f"path={data / 't.csv'}", "tokenizer=all-MiniLM-L6-v2", "max_length=8"]
    return ["domain@source=text", "domain@target=text",
            *(f"{r}.{d}" for r in ("source", "target") for d in dom),
            "model=bert", "model.input_shape=[8]", f"model.weights={data / 'bert'}",
            "transfer=feature_extractor", "method=dann", "optim=sgd", "optim.lr=0.05",
            "trainer.steps=4", "trainer.batch_size=8", "trainer.eval_every=2",
            "trainer.log_every=2", "trainer.checkpoint_every=4", "trainer.progress=false",
            "trainer.tensorboard=false", f"paths.tfds_dir={cache}", *extra]


def cfg_of(*args: str) -> dict:
    return OmegaConf.to_container(compose_cfg(list(args)), resolve=True)


def test_cached_text_features_are_the_frozen_encoders(data: Path, tmp_path: Path):
    """Every split's cached features are the loaded BERT's mean-pooled output on its tokens
    and mask (eval mode, no cache), the network's backbone is the identity on them, and a
    second build reads them from disk; feature_cache=false leaves the tokens in place."""
    args = overrides(data, tmp_path / "cache")
    cached = build_all(cfg_of(*args))
    assert isinstance(cached.net.backbone, features.CachedBackbone)
    fc = cached.roles.feature_cache
    assert fc["computed_rows"] == 40 and "tokens" in fc["view"]
    assert {e["tokenizer_sha256"] for e in json.loads(
        (Path(fc["dir"]) / "space.json").read_text())["text"]} == {
        features.text_identity(cfg_of(*args))[0]["tokenizer_sha256"]}
    plain_cfg = cfg_of(*args, "trainer.feature_cache=false")
    plain = build_all(plain_cfg)
    assert plain.roles.feature_cache is None and plain.roles.target.train.field == "tokens"
    params = initial_params(plain_cfg, plain.roles.target, plain.method, plain.net)
    bb = nnx.merge(nnx.graphdef(plain.net), params).backbone
    encode = jax.jit(lambda t, m: bb({"tokens": t, "mask": m}))  # the plain frozen forward
    for part in ("train", "val", "test"):
        split = getattr(plain.roles.target, part)
        ref = encode(jnp.asarray(split.fields["tokens"]), jnp.asarray(split.fields["mask"]))
        got = getattr(cached.roles.target, part).fields["features"]
        assert got.shape == (len(split), 16)
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
        np.testing.assert_array_equal(getattr(cached.roles.target, part).y, split.y)
    again = build_all(cfg_of(*args))
    assert again.roles.feature_cache["computed_rows"] == 0
    np.testing.assert_array_equal(again.roles.target.test.fields["features"],
                                  cached.roles.target.test.fields["features"])


def test_a_cached_text_run_trains_only_neck_head_and_method(data: Path, tmp_path: Path):
    """feature_cache=auto on a frozen BERT, seeds 0 and 1 vmapped: the summary says where the
    features came from, the backbone in the checkpoint is the loaded one bit for bit, the
    head and discriminator moved; num_params is the uncached network's."""
    args = overrides(data, tmp_path / "cache", "trainer.seeds=[0,1]")
    out = train_and_evaluate(compose_cfg(args), tmp_path / "run")
    cfg = cfg_of(*args)
    b = build_all(cfg)
    init = initial_params(cfg, b.roles.target, b.method, b.net)
    plain = build_all(cfg_of(*args, "trainer.feature_cache=false"))
    n_plain = num_params(nnx.split(plain.net)[1].to_pure_dict(), stat_paths(plain.net))
    for seed in (0, 1):
        run = out["runs"][seed]
        assert run["feature_cache"]["splits"].keys() == {
            f"{r}/{p}" for r in ("source", "target") for p in ("train", "val", "test")}
        assert np.isfinite(run["target/test/accuracy"]) and run["num_params"] == n_plain
        p = ckpt.load_params(tmp_path / "run" / f"seed{seed}",
                             nnx.split(b.net)[1].to_pure_dict())[0]
        jax.tree_util.tree_map(np.testing.assert_array_equal, p["backbone"], init["backbone"])
        assert not np.allclose(p["head"]["kernel"], init["head"]["kernel"])
        assert any(not np.allclose(a, c) for a, c in zip(
            jax.tree_util.tree_leaves(p["disc"]), jax.tree_util.tree_leaves(init["disc"]),
            strict=True))


def test_text_keys_change_with_tokenizer_pooling_and_text(data: Path, tokenizer: Path,
                                                          tmp_path: Path):
    """The space: the tokenizer file's content (not its path), max_length and the pooling;
    an entry: each row's token ids and mask, so a changed text is computed for that row only."""
    args = overrides(data, tmp_path / "cache")
    cfg = cfg_of(*args)
    pp = Pipeline(field="tokens")
    text = features.text_identity(cfg)
    key = features.space(cfg, "aa", pp, text)[0]
    assert len(text) == 1 and text[0]["max_length"] == 8  # source and target: one tokenizer
    assert features.space(cfg, "aa", pp)[0] != key  # the tokenizer is part of the key
    other = tmp_path / "tok" / "tokenizer.json"  # the same tokenizer, other bytes
    other.parent.mkdir()
    other.write_text(tokenizer.read_text() + "\n")
    changed = cfg_of(*args, f"target.tokenizer={other}")
    assert len(features.text_identity(changed)) == 2
    assert features.space(changed, "aa", pp, features.text_identity(changed))[0] != key
    moved = tmp_path / "moved" / "tokenizer.json"  # the same bytes elsewhere: the same key
    moved.parent.mkdir()
    shutil.copy(tokenizer, moved)
    same = cfg_of(*args, f"source.tokenizer={moved}", f"target.tokenizer={moved}")
    assert features.space(same, "aa", pp, features.text_identity(same))[0] == key
    longer = cfg_of(*args, "source.max_length=12", "target.max_length=12")
    assert features.space(longer, "aa", pp, features.text_identity(longer))[0] != key
    cls = cfg_of(*args, "model.pooling=cls")
    assert features.space(cls, "aa", pp, text)[0] != key
    # entries: a row is its tokens and mask
    b = build_all(cfg_of(*args, "trainer.feature_cache=false"))
    x = features.stored_input(b.roles.target.train)
    assert x.shape == (len(b.roles.target.train), 2, 8) and x.dtype == np.int32
    store = features.Store(tmp_path, key, {})

    def fn(rows):
        return rows[:, 0, :3].astype(np.float32)

    f1, e1 = store.get(x, fn, "a")
    y = x.copy()
    y[1, 0, 2] += 1  # one token of one text
    f2, e2 = store.get(y, fn, "b")
    assert e1 != e2 and store.computed == len(x) + 1
    np.testing.assert_array_equal(np.delete(f2, 1, 0), np.delete(f1, 1, 0))
    z = x.copy()
    z[2, 1, -1] ^= 1  # the mask alone
    assert store.get(z, fn, "c")[1] not in (e1, e2)


def test_text_runs_that_cannot_be_cached_say_why(data: Path, tmp_path: Path):
    """A fine-tuned BERT trains: not cached (auto), refused in one line (true)."""
    from tests.train.test_feature_cache import build_all_uncached

    def reason(*extra: str) -> str | None:
        cfg = cfg_of(*overrides(data, tmp_path / "c"), *extra)
        roles, method, net = build_all_uncached(cfg)
        return features.why_not(cfg, [roles.target], method, net)

    assert reason() is None
    assert "backbone trains" in reason("transfer=finetune")
    assert "false" in reason("trainer.feature_cache=false")
    with pytest.raises(JtlError, match=r"feature_cache=true: .* \(the backbone trains"):
        build_all(cfg_of(*overrides(data, tmp_path / "c"), "transfer=finetune",
                         "trainer.feature_cache=true"))
