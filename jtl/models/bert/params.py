"""Hugging Face BERT `model.safetensors` -> `BertModel` parameters: a table of regexes.

Each rule maps a checkpoint key to the nnx parameter path (modeling.py's docstring lists
them) and a transform: torch Linear stores (out, in), nnx (in, out), hence `.T`. Keys may
carry BertForPreTraining's `bert.` prefix (bert-base-uncased, multilingual BERT) and the old
LayerNorm names `gamma`/`beta`; XLM-R / RoBERTa keys are BERT's under `roberta.` (or none),
their position offset is the model's (`BertConfig.positions`), their one token type a
(1, H) table. `embeddings.position_ids` (a buffer) is ignored; keys no rule
knows (an MLM head `cls.*`, a pooler the model was built without) are reported as unused.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jtl.errors import JtlError
from jtl.models.base import path_str
from jtl.models.bert.modeling import BertConfig, BertModel
from jtl.models.pretrained import Converted

_P = r"^(?:bert\.|roberta\.)?"
_L = r"encoder\.layer\.(\d+)\."
_W = r"(?:weight|gamma)$"
_B = r"(?:bias|beta)$"


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _t(x: np.ndarray) -> np.ndarray:
    return x.T


def _linear(hf: str, nnx_path: str) -> list[tuple[str, str, Callable]]:
    return [(hf + r"weight$", nnx_path + "/kernel", _t), (hf + r"bias$", nnx_path + "/bias", _same)]


def _norm(hf: str, nnx_path: str) -> list[tuple[str, str, Callable]]:
    return [(hf + _W, nnx_path + "/scale", _same), (hf + _B, nnx_path + "/bias", _same)]


# (checkpoint key regex, nnx path with \1 for the layer, transform)
RULES: tuple[tuple[str, str, Callable[[np.ndarray], np.ndarray]], ...] = (
    (_P + r"embeddings\.word_embeddings\.weight$", "embeddings/word/embedding", _same),
    (_P + r"embeddings\.position_embeddings\.weight$", "embeddings/position/embedding", _same),
    (_P + r"embeddings\.token_type_embeddings\.weight$", "embeddings/token_type/embedding",
     _same),
    *_norm(_P + r"embeddings\.LayerNorm\.", "embeddings/norm"),
    *_linear(_P + _L + r"attention\.self\.query\.", r"blocks/\1/attention/query"),
    *_linear(_P + _L + r"attention\.self\.key\.", r"blocks/\1/attention/key"),
    *_linear(_P + _L + r"attention\.self\.value\.", r"blocks/\1/attention/value"),
    *_linear(_P + _L + r"attention\.output\.dense\.", r"blocks/\1/attention/out"),
    *_norm(_P + _L + r"attention\.output\.LayerNorm\.", r"blocks/\1/attention_norm"),
    *_linear(_P + _L + r"intermediate\.dense\.", r"blocks/\1/ffn_in"),
    *_linear(_P + _L + r"output\.dense\.", r"blocks/\1/ffn_out"),
    *_norm(_P + _L + r"output\.LayerNorm\.", r"blocks/\1/ffn_norm"),
    *_linear(_P + r"pooler\.dense\.", "pooler"),
)
IGNORED = re.compile(_P + r"embeddings\.(?:position_ids|token_type_ids)$")


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """Which model paths came from the checkpoint (`loaded`) and which kept their fresh
    initialisation (`missing`); `unused`: checkpoint keys that went nowhere."""

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unused: tuple[str, ...]


def nnx_path(key: str) -> tuple[str, Callable[[np.ndarray], np.ndarray]] | None:
    """The nnx path and transform a checkpoint key maps to; None when no rule knows it."""
    for pattern, target, fn in RULES:
        m = re.match(pattern, key)
        if m:
            return m.expand(target), fn
    return None


def load_hf_weights(model: BertModel, tensors: Mapping[str, np.ndarray],
                    source: str = "checkpoint") -> LoadReport:
    """Copy a Hugging Face BERT state dict into `model`'s parameters, in place.

    A tensor whose shape differs from the parameter's (after the transform) is one line naming
    the key; two keys that map to one path (e.g. with and without `bert.`) are refused."""
    flat_state = nnx.to_flat_state(nnx.state(model, nnx.Param))
    flat = {path_str(p): var for p, var in flat_state}  # the model's own Variables
    new: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    unused = []
    for key in sorted(tensors):
        hit = nnx_path(key)
        if hit is None or hit[0] not in flat:
            if not IGNORED.match(key):
                unused.append(key)
            continue
        path, fn = hit
        if path in new:
            raise JtlError(f"{source}: {origin[path]} and {key} both map to {path}")
        value = fn(np.asarray(tensors[key]))
        want = tuple(flat[path].get_value().shape)
        if value.shape != want:
            raise JtlError(f"{source}: {key} has shape {tuple(tensors[key].shape)}, which "
                           f"gives {value.shape} for {path}; the model has {want}: the "
                           f"config.json does not describe this checkpoint")
        new[path] = value
        origin[path] = key
    for path, value in new.items():  # only once every key checked: a refusal changes nothing
        var = flat[path]
        var.set_value(jnp.asarray(value, dtype=var.get_value().dtype))
    return LoadReport(loaded=tuple(p for p in flat if p in new),
                      missing=tuple(p for p in flat if p not in new), unused=tuple(unused))


def load_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """A `.safetensors` file as numpy arrays (no torch); unreadable is one line."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise JtlError(f"{path}: no such file") from None
    except Exception as e:  # safetensors raises its own SafetensorError for a damaged file
        raise JtlError(f"{path}: not a readable safetensors file ({e})") from None


def from_pretrained(model_dir: str | Path, *, seed: int = 0,
                    **kwargs: Any) -> tuple[BertModel, LoadReport]:
    """`BertModel` from a Hugging Face folder (`config.json` + `model.safetensors`); `kwargs`
    go to `BertModel` (pooling, normalize, pooler, dtype). Builds the pooler when the
    checkpoint has one unless `pooler=` says otherwise."""
    model_dir = Path(model_dir)
    cfg = BertConfig.from_json(model_dir / "config.json")
    tensors = load_safetensors(model_dir / "model.safetensors")
    kwargs.setdefault("pooler", any(re.match(_P + r"pooler\.", k) for k in tensors))
    model = BertModel(cfg, rngs=nnx.Rngs(seed), **kwargs)
    return model, load_hf_weights(model, tensors, source=str(model_dir / "model.safetensors"))


def backbone_path(path: str) -> str:
    """A `BertModel` path -> the jtl backbone's (jtl/models/bert/backbone.py): the embeddings
    are block 0, layer i is block i + 1; the pooler (not built) stays `backbone/pooler`."""
    if path.startswith("embeddings/"):
        return "backbone/blocks/0/" + path[len("embeddings/"):]
    m = re.match(r"blocks/(\d+)/(.*)$", path)
    if m:
        return f"backbone/blocks/{int(m.group(1)) + 1}/{m.group(2)}"
    return "backbone/" + path


def from_state_dict(state_dict: Mapping[str, np.ndarray], backbone_cls: type) -> Converted:
    """The family hook `jtl.models.pretrained` calls for `model.weights`: every key a rule
    knows at its backbone path (a pooler, an MLM head or a classifier the network lacks is
    reported ignored by `load_into`), the position-id buffers dropped."""
    del backbone_cls
    arrays, source, ignored, unknown = {}, {}, [], []
    for key in sorted(state_dict):
        if IGNORED.match(key):
            ignored.append(key)
            continue
        hit = nnx_path(key)
        if hit is None:
            unknown.append(key)
            continue
        path = backbone_path(hit[0])
        if path in arrays:
            raise JtlError(f"checkpoint keys {source[path]} and {key} both map to {path}")
        arrays[path] = hit[1](np.asarray(state_dict[key]))
        source[path] = key
    for key in unknown:  # kept under their own names: reported ignored, never loaded
        arrays[f"unknown/{key}"] = np.asarray(state_dict[key])
        source[f"unknown/{key}"] = key
    if not any(p.startswith("backbone/blocks/") for p in arrays):
        raise JtlError(f"checkpoint keys {sorted(state_dict)[:3]} ...: not a BERT / XLM-R "
                       "checkpoint (no embeddings.* or encoder.layer.* keys)")
    return Converted(arrays, source, ignored)
