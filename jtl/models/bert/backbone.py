"""BERT (MiniLM, bert-base, XLM-R) as a jtl backbone: `model=bert` / the preset `model=minilm`.

It reads a text domain's `tokens` and `mask` (`tokenizer=` on the domain) and gives one
pooled feature per text (`pooling: mean`, sentence-transformers' masked mean, or `cls`), so
the neck, the head and every method (dann, cdan, mmd, ...) see a (B, D) feature as for
images. Blocks, what `freeze_k`, `keep_blocks` and `layer_decay` address:
`backbone/blocks/0` the embeddings, `backbone/blocks/<i>` transformer layer i - 1
(MiniLM-L6: 7 blocks). BERT's pooler (dense + tanh on [CLS]) is not built: a checkpoint's
`pooler.*` is reported ignored.

Architecture: the `config.json` beside `weights` (a folder, the file's folder, or the hf://
snapshot); without weights, `config` (the fields of a config.json, e.g. a tiny random BERT).
The parameters themselves are loaded by `jtl.models.pretrained` (params.py's
`from_state_dict`), after this random init. No dropout: a call is the same in training and
evaluation (jtl's step has no dropout key), so fine-tuning runs without BERT's 0.1 dropout.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.errors import JtlError
from jtl.models.base import MODELS, Backbone
from jtl.models.bert.modeling import (
    BertConfig,
    Block,
    Embeddings,
    attention_bias,
    cls_pool,
    l2_normalize,
    mean_pool,
)

POOLINGS = ("mean", "cls")


def config_of(weights: str | None, config: Mapping[str, Any] | None) -> BertConfig:
    """The architecture: the weights' config.json when there are weights (the checkpoint
    says what it is), else `config`'s fields (a randomly initialised BERT)."""
    if weights is None:
        if config is None:
            raise JtlError("model=bert needs model.weights (a BERT folder or hf://<org>/<name>; "
                           "model=minilm is all-MiniLM-L6-v2) or model.config (config.json "
                           "fields of a randomly initialised BERT)")
        return BertConfig.from_hf(dict(config), source="model.config")
    from jtl.models.pretrained import HF, weights_file

    path = weights_file(weights).parent / "config.json"
    if not path.is_file() and weights.startswith(HF):
        from huggingface_hub import hf_hub_download

        repo, _, rev = weights[len(HF):].partition("@")
        with contextlib.suppress(Exception):  # not cached: the one line below
            path = Path(hf_hub_download(repo, "config.json", revision=rev or None,
                                        local_files_only=True))
    if not path.is_file():
        raise JtlError(f"model.weights={weights}: no config.json beside it ({path}); give a "
                       "Hugging Face folder, or the architecture as model.config")
    return BertConfig.from_hf(json.loads(path.read_text()), source=str(path))


def _fields(x: Mapping[str, jax.Array] | jax.Array) -> tuple[jax.Array, jax.Array]:
    """(tokens, mask) of the model input; a bare (B, T) array is tokens without padding (what
    shape-only callers such as `jtl.train.backend.runs_conv` pass: zeros of input_shape)."""
    if isinstance(x, Mapping):
        return x["tokens"], x["mask"]
    tokens = jnp.asarray(x).astype(jnp.int32)
    return tokens, jnp.ones_like(tokens)


@MODELS.register("bert")
class Bert(Backbone):
    """(tokens, mask) -> pooled (B, hidden_size) features; blocks: embeddings, then layers."""

    reads = ("tokens",)

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs,
                 weights: str | None = None, config: dict[str, Any] | None = None,
                 pooling: str = "mean", normalize: bool = False) -> None:
        """`input_shape`: (T,), the token length (shape checks only: a domain may be shorter).
        `normalize`: L2-normalise the pooled feature (sentence-transformers' Normalize)."""
        if pooling not in POOLINGS:
            raise JtlError(f"model.pooling={pooling!r}: use one of {list(POOLINGS)}")
        cfg = config_of(weights, config)
        if input_shape and input_shape[0] > cfg.max_length:
            raise JtlError(f"model.input_shape={list(input_shape)}: this BERT has "
                           f"{cfg.max_length} positions; use max_length <= that")
        self.config = cfg
        self.pooling = pooling
        self.normalize = normalize
        self.blocks = nnx.List([Embeddings(cfg, dtype=None, rngs=rngs),
                                *(Block(cfg, dtype=None, rngs=rngs)
                                  for _ in range(cfg.num_hidden_layers))])
        self.feature_dim = cfg.hidden_size

    def maps(self, x: Mapping[str, jax.Array] | jax.Array) -> jax.Array:
        """The last kept block's hidden states (B, T, H)."""
        tokens, mask = _fields(x)
        if tokens.shape[1] > self.config.max_length:
            raise JtlError(f"sequences of {tokens.shape[1]} tokens: this BERT has "
                           f"{self.config.max_length} positions; set the domain's max_length")
        bias = attention_bias(mask)
        h = self.blocks[0](tokens, jnp.zeros_like(tokens), None)
        for block in list(self.blocks)[1:]:
            h = block(h, bias, None)
        return h

    def __call__(self, x: Mapping[str, jax.Array]) -> jax.Array:
        h = self.maps(x)
        f = mean_pool(h, _fields(x)[1]) if self.pooling == "mean" else cls_pool(h)
        return l2_normalize(f) if self.normalize else f

    def cut(self, keep: int, input_shape: tuple[int, ...]) -> None:
        """Keep the embeddings and the first keep - 1 layers; features stay hidden_size."""
        n = len(self.blocks)
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= n:
            raise JtlError(f"transfer.keep_blocks={keep!r}: an integer in 1..{n} (this BERT "
                           f"has {n} blocks: the embeddings and {n - 1} layers)")
        self.blocks = nnx.List(list(self.blocks)[:keep])
