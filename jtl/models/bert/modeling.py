"""A BERT encoder in nnx, built from a Hugging Face BERT `config.json` (BertModel's layout).

    h0 = LN(word[tokens] + position[0..T) + token_type[types])          (embeddings)
    a  = LN(h + out(softmax(q k^T / sqrt(d) + bias) v))                 (per block, post-LN)
    h' = LN(a + ffn_out(gelu(ffn_in(a))))                              (exact erf GELU)

`bias` is 0 on valid keys and the dtype's minimum on padded ones (`mask` == 0), as
transformers' eager attention adds, so padded positions get outputs too (they attend to the
valid tokens) and match PyTorch's there as well. Pooling as sentence-transformers does:
`mean_pool` (masked mean) then `l2_normalize`; `cls_pool` is the [CLS] position.

Parameter paths (what `params.py` maps Hugging Face keys to, and what freezing regexes see):
`embeddings/{word,position,token_type}/embedding`, `embeddings/norm/{scale,bias}`,
`blocks/<i>/attention/{query,key,value,out}/{kernel,bias}`, `blocks/<i>/attention_norm/...`,
`blocks/<i>/{ffn_in,ffn_out}/{kernel,bias}`, `blocks/<i>/ffn_norm/...`, `pooler/{kernel,bias}`.

Dropout (the config's rates) is active only when a call passes `rngs`: a call without them is
inference, so nothing here holds a train/eval switch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.errors import JtlError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),  # BERT's: exact erf
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
}
POOLINGS = ("mean", "cls", "pooler")
POSITIONS = ("bert", "roberta")
ROBERTA_TYPES = ("roberta", "xlm-roberta", "camembert")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face BERT `config.json` this encoder reads (MiniLM's defaults
    are not assumed: `from_hf` requires the architecture's fields)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0
    # "bert": positions 0..T-1. "roberta" (XLM-R, RoBERTa): a real token (id != pad_token_id)
    # at t gets pad_token_id + 1 + t (its count of real tokens so far), padding gets
    # pad_token_id, as transformers' create_position_ids_from_input_ids.
    positions: str = "bert"

    REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size",
                "layer_norm_eps")

    def __post_init__(self) -> None:
        if self.hidden_act not in ACTIVATIONS:
            raise JtlError(f"config hidden_act={self.hidden_act!r}: supported are "
                           f"{', '.join(ACTIVATIONS)}")
        if self.positions not in POSITIONS:
            raise JtlError(f"config positions={self.positions!r}: use one of {POSITIONS}")
        if self.hidden_size % self.num_attention_heads:
            raise JtlError(f"config hidden_size={self.hidden_size} is not a multiple of "
                           f"num_attention_heads={self.num_attention_heads}")

    @classmethod
    def from_hf(cls, d: Mapping[str, Any], source: str = "config") -> BertConfig:
        """From a parsed `config.json`; a field this encoder cannot honour is one line."""
        missing = [k for k in cls.REQUIRED if k not in d]
        if missing:
            raise JtlError(f"{source}: no {', '.join(missing)}: not a BERT config.json")
        kind = d.get("position_embedding_type", "absolute")
        if kind != "absolute":
            raise JtlError(f"{source}: position_embedding_type={kind!r}: only 'absolute' "
                           f"(BERT's learned positions) is implemented")
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in d.items() if k in names}
        if d.get("model_type") in ROBERTA_TYPES:
            fields["positions"] = "roberta"
        return cls(**fields)

    @classmethod
    def from_json(cls, path: str | Path) -> BertConfig:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise JtlError(f"{path}: cannot read a config.json ({e})") from None
        return cls.from_hf(d, source=str(path))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_length(self) -> int:
        """The longest sequence the position table covers (RoBERTa's first pad_token_id + 1
        rows are never a real token's)."""
        offset = self.pad_token_id + 1 if self.positions == "roberta" else 0
        return self.max_position_embeddings - offset


def position_ids(tokens: jax.Array, cfg: BertConfig) -> jax.Array:
    """(B,T) rows of the position table (see `BertConfig.positions`)."""
    if cfg.positions == "bert":
        return jnp.broadcast_to(jnp.arange(tokens.shape[1])[None, :], tokens.shape)
    real = (tokens != cfg.pad_token_id).astype(jnp.int32)
    return jnp.cumsum(real, axis=1) * real + cfg.pad_token_id


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """sum_t h_t m_t / max(sum_t m_t, 1e-9): sentence-transformers' mean pooling, (B,T,H)->(B,H)."""
    m = mask.astype(hidden.dtype)[..., None]
    return (hidden * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1e-9)


def cls_pool(hidden: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The first ([CLS]) position, (B,T,H)->(B,H)."""
    del mask
    return hidden[:, 0]


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """x / max(||x||_2, eps) on the last axis (torch.nn.functional.normalize)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def _dropout(x: jax.Array, rate: float, rngs: nnx.Rngs | None) -> jax.Array:
    if rngs is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rngs.dropout(), 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


class Embeddings(nnx.Module):
    def __init__(self, cfg: BertConfig, *, dtype: Any, rngs: nnx.Rngs) -> None:
        init = nnx.initializers.normal(0.02)  # BERT's initializer_range
        embed = functools.partial(nnx.Embed, embedding_init=init, dtype=dtype, rngs=rngs)
        self.word = embed(cfg.vocab_size, cfg.hidden_size)
        self.position = embed(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type = embed(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = _layer_norm(cfg, dtype, rngs)
        self.rate = cfg.hidden_dropout_prob
        self.config = cfg

    def __call__(self, tokens: jax.Array, token_types: jax.Array,
                 rngs: nnx.Rngs | None) -> jax.Array:
        positions = position_ids(tokens, self.config)
        x = self.word(tokens) + self.position(positions) + self.token_type(token_types)
        return _dropout(self.norm(x), self.rate, rngs)


class Block(nnx.Module):
    """One post-LN transformer layer: self-attention, then the GELU feed-forward network."""

    def __init__(self, cfg: BertConfig, *, dtype: Any, rngs: nnx.Rngs) -> None:
        h = cfg.hidden_size
        self.attention = SelfAttention(cfg, dtype=dtype, rngs=rngs)
        self.attention_norm = _layer_norm(cfg, dtype, rngs)
        self.ffn_in = _linear(h, cfg.intermediate_size, dtype, rngs)
        self.ffn_out = _linear(cfg.intermediate_size, h, dtype, rngs)
        self.ffn_norm = _layer_norm(cfg, dtype, rngs)
        self.act = cfg.hidden_act
        self.rate = cfg.hidden_dropout_prob

    def __call__(self, x: jax.Array, bias: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        a = self.attention(x, bias, rngs)
        x = self.attention_norm(x + _dropout(a, self.rate, rngs))
        f = self.ffn_out(ACTIVATIONS[self.act](self.ffn_in(x)))
        return self.ffn_norm(x + _dropout(f, self.rate, rngs))


class SelfAttention(nnx.Module):
    def __init__(self, cfg: BertConfig, *, dtype: Any, rngs: nnx.Rngs) -> None:
        h = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.query = _linear(h, h, dtype, rngs)
        self.key = _linear(h, h, dtype, rngs)
        self.value = _linear(h, h, dtype, rngs)
        self.out = _linear(h, h, dtype, rngs)
        self.rate = cfg.attention_probs_dropout_prob

    def __call__(self, x: jax.Array, bias: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        B, T, H = x.shape
        split = lambda y: y.reshape(B, T, self.heads, H // self.heads)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(H // self.heads).astype(x.dtype)
        # softmax in float32 also when the compute dtype is bfloat16
        probs = jax.nn.softmax(scores.astype(jnp.float32) + bias, axis=-1).astype(x.dtype)
        probs = _dropout(probs, self.rate, rngs)
        return self.out(jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(B, T, H))


class BertModel(nnx.Module):
    """BERT encoder: `model(tokens, mask)` -> (hidden (B,T,H), pooled (B,H)).

    tokens, mask: (B,T) integer arrays (mask 1 on real tokens, 0 on padding), T at most
    `max_position_embeddings`; token_types: (B,T), zeros when not given. `pooling` picks the
    sentence feature: "mean" (sentence-transformers' masked mean), "cls" (the [CLS] state) or
    "pooler" (BERT's tanh(dense([CLS])), which needs `pooler=True`); `normalize` L2-normalises
    it (sentence-transformers' Normalize). `dtype` is the compute dtype (params stay float32).
    """

    def __init__(self, cfg: BertConfig, *, pooling: str = "mean", normalize: bool = False,
                 pooler: bool = False, dtype: Any = None, rngs: nnx.Rngs) -> None:
        if pooling not in POOLINGS:
            raise JtlError(f"pooling={pooling!r}: use one of {POOLINGS}")
        if pooling == "pooler" and not pooler:
            raise JtlError("pooling='pooler' needs pooler=True (BERT's dense+tanh on [CLS])")
        self.config = cfg
        self.pooling = pooling
        self.normalize = normalize
        self.embeddings = Embeddings(cfg, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([Block(cfg, dtype=dtype, rngs=rngs)
                                for _ in range(cfg.num_hidden_layers)])
        self.pooler = (_linear(cfg.hidden_size, cfg.hidden_size, dtype, rngs) if pooler
                       else None)

    def hidden_states(self, tokens: jax.Array, mask: jax.Array,
                      token_types: jax.Array | None = None, *,
                      rngs: nnx.Rngs | None = None) -> list[jax.Array]:
        """The embedding output, then each block's output: num_hidden_layers + 1 of (B,T,H)."""
        length, limit = tokens.shape[1], self.config.max_length
        if length > limit:  # the position table would be read out of range (and clipped silently)
            raise JtlError(f"sequences of {length} tokens: this encoder has {limit} positions; "
                           f"truncate to that (Tokenizer max_length)")
        if token_types is None:
            token_types = jnp.zeros_like(tokens)
        bias = attention_bias(mask)
        x = self.embeddings(tokens, token_types, rngs)
        out = [x]
        for block in self.blocks:
            x = block(x, bias, rngs)
            out.append(x)
        return out

    def pool(self, hidden: jax.Array, mask: jax.Array) -> jax.Array:
        if self.pooling == "mean":
            feat = mean_pool(hidden, mask)
        elif self.pooling == "cls":
            feat = cls_pool(hidden)
        else:
            feat = jnp.tanh(self.pooler(hidden[:, 0]))
        return l2_normalize(feat) if self.normalize else feat

    def __call__(self, tokens: jax.Array, mask: jax.Array,
                 token_types: jax.Array | None = None, *,
                 rngs: nnx.Rngs | None = None) -> tuple[jax.Array, jax.Array]:
        hidden = self.hidden_states(tokens, mask, token_types, rngs=rngs)[-1]
        return hidden, self.pool(hidden, mask)


def attention_bias(mask: jax.Array) -> jax.Array:
    """(B,T) mask -> (B,1,1,T) additive bias: 0 on real keys, float32's minimum on padding."""
    return jnp.where(mask[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min)


def _linear(din: int, dout: int, dtype: Any, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(din, dout, kernel_init=nnx.initializers.normal(0.02), dtype=dtype,
                      rngs=rngs)


def _layer_norm(cfg: BertConfig, dtype: Any, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # use_fast_variance=False: E[(x-mean)^2], as torch computes it (E[x^2]-mean^2 loses digits)
    return nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, dtype=dtype,
                         use_fast_variance=False, rngs=rngs)
