"""EfficientNet-Lite weights in the lukemelas / efficientnet-lite-pytorch layout -> jtl paths.

The checkpoint's keys (`_conv_stem.weight`, `_bn0.*`, `_blocks.N._expand_conv|_bn0|
_depthwise_conv|_bn1|_project_conv|_bn2.*`, `_conv_head.weight`, `_bn1.*`, `_fc.*`) map to
the parameter paths of `Network` / `ImageNetClassifier` by the regex table `KEYS`:

    _conv_stem            backbone/blocks/0/conv           stem
    _blocks.N._expand_conv backbone/blocks/{N+1}/expand/conv   (MBConv N is blocks[N + 1])
    _conv_head            backbone/blocks/{last}/conv      head conv
    _fc                   fc (or `classifier=`, e.g. head for jtl's Network at 1000 classes)

Transposes: conv (O, I/groups, kH, kW) -> HWIO (kH, kW, I/groups, O), which turns a depthwise
(C, 1, k, k) into (k, k, 1, C); fc (out, in) -> (in, out). BatchNorm weight/bias -> scale/bias
(parameters), running_mean/var -> mean/var (the BN state jtl keeps beside the parameters);
`num_batches_tracked` is ignored.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jtl.errors import JtlError
from jtl.models.base import path_str

_CONV = (2, 3, 1, 0)
_LINEAR = (1, 0)
_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_BN_RE = r"\.(?P<leaf>weight|bias|running_mean|running_var)"

# (checkpoint key regex, jtl path template, transpose). Templates are str.format'ed with the
# match's named groups plus b = MBConv index + 1 (its place in `blocks`), last = the head's
# index and fc = the classifier's prefix; a BN leaf is renamed by _BN.
KEYS: list[tuple[str, str, tuple[int, ...] | None]] = [
    (r"_conv_stem\.weight", "backbone/blocks/0/conv/kernel", _CONV),
    (r"_bn0" + _BN_RE, "backbone/blocks/0/bn/{leaf}", None),
    (r"_blocks\.(?P<n>\d+)\._(?P<conv>expand|depthwise|project)_conv\.weight",
     "backbone/blocks/{b}/{conv}/conv/kernel", _CONV),
    (r"_blocks\.(?P<n>\d+)\._bn0" + _BN_RE, "backbone/blocks/{b}/expand/bn/{leaf}", None),
    (r"_blocks\.(?P<n>\d+)\._bn1" + _BN_RE, "backbone/blocks/{b}/depthwise/bn/{leaf}", None),
    (r"_blocks\.(?P<n>\d+)\._bn2" + _BN_RE, "backbone/blocks/{b}/project/bn/{leaf}", None),
    (r"_conv_head\.weight", "backbone/blocks/{last}/conv/kernel", _CONV),
    (r"_bn1" + _BN_RE, "backbone/blocks/{last}/bn/{leaf}", None),
    (r"_fc\.weight", "{fc}/kernel", _LINEAR),
    (r"_fc\.bias", "{fc}/bias", None),
]
IGNORED = (r".*\.num_batches_tracked",)


@dataclasses.dataclass(frozen=True)
class Converted:
    """A checkpoint in jtl's terms: `arrays[path]` came from checkpoint key `source[path]`;
    `ignored`: checkpoint keys deliberately dropped (BN batch counters)."""

    arrays: dict[str, np.ndarray]
    source: dict[str, str]
    ignored: list[str]


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """Which parameter paths came from the checkpoint (`loaded`) and which kept their fresh
    values (`missing`: a new head, say); `unused`: checkpoint keys whose jtl path the model
    does not have (the ImageNet `_fc` under a task head); `ignored`: keys never converted."""

    file: str
    loaded: list[str]
    missing: list[str]
    unused: list[str]
    ignored: list[str]

    def summary(self) -> dict[str, Any]:
        """Counts and the short lists, for summary.json."""
        return {"file": self.file, "loaded": len(self.loaded), "missing": self.missing,
                "unused": self.unused, "ignored": len(self.ignored)}


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """A safetensors file as numpy arrays by key."""
    from safetensors.numpy import load_file

    p = Path(path)
    if not p.is_file():
        raise JtlError(f"model.weights={path}: no such file; give a .safetensors file "
                       "(EfficientNet-Lite: shared/models/efficientnet_lite0.safetensors)")
    try:
        return load_file(str(p))
    except Exception as e:  # safetensors raises its own SafetensorError / OSError
        raise JtlError(f"model.weights={path}: not a readable safetensors file "
                       f"({type(e).__name__}: {e}); re-download or convert it") from None


def convert(state_dict: Mapping[str, np.ndarray], num_blocks: int,
            classifier: str = "fc") -> Converted:
    """Map every checkpoint key through `KEYS` and transpose; `num_blocks` is the MBConv
    count (16 for Lite0: the head is blocks[num_blocks + 1]). A key no rule and no IGNORED
    pattern matches is refused: the file is another architecture (squeeze-excite B0, say)."""
    arrays, source, ignored, unknown = {}, {}, [], []
    for key, value in state_dict.items():
        if any(re.fullmatch(p, key) for p in IGNORED):
            ignored.append(key)
            continue
        hits = [(m, template, perm) for pat, template, perm in KEYS
                if (m := re.fullmatch(pat, key))]
        if not hits:
            unknown.append(key)
            continue
        (m, template, perm), = hits  # the table's patterns are disjoint
        groups = m.groupdict()
        if "leaf" in groups:
            groups["leaf"] = _BN[groups["leaf"]]
        b = int(groups["n"]) + 1 if "n" in groups else None
        path = template.format(**groups, b=b, last=num_blocks + 1, fc=classifier)
        if b is not None and not 1 <= b <= num_blocks:
            unknown.append(key)
            continue
        arr = np.asarray(value)
        arrays[path] = arr.transpose(perm) if perm is not None else arr
        source[path] = key
    if unknown:
        raise JtlError(f"checkpoint keys {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
                       f"({len(unknown)}) are not EfficientNet-Lite with {num_blocks} blocks; "
                       "give the weights of this model size (lukemelas key layout)")
    return Converted(arrays, source, sorted(ignored))


def load_into(params: Any, converted: Converted, file: str = "") -> tuple[Any, LoadReport]:
    """`params` (a pure-dict pytree, e.g. `nnx.split(net)[1].to_pure_dict()`) with every
    leaf the checkpoint has replaced, in the leaf's dtype; a shape mismatch is refused naming
    the checkpoint key and the jtl path."""
    loaded, missing, wrong = [], [], []

    def pick(path: tuple, value: Any) -> Any:
        p = path_str(path)
        if p not in converted.arrays:
            missing.append(p)
            return value
        arr = converted.arrays[p]
        if tuple(arr.shape) != tuple(value.shape):
            wrong.append(f"checkpoint key '{converted.source[p]}' has shape {tuple(arr.shape)} "
                         f"after conversion, the model's '{p}' has {tuple(value.shape)}")
            return value
        loaded.append(p)
        return np.asarray(arr, dtype=value.dtype)

    new = jax.tree_util.tree_map_with_path(pick, params)
    if wrong:
        more = f" (and {len(wrong) - 2} more)" if len(wrong) > 2 else ""
        where = f"model.weights={file}: " if file else ""
        raise JtlError(f"{where}{'; '.join(wrong[:2])}{more}. Give the weights "
                       "of this model size; a task head is not loaded (keep the checkpoint's "
                       "classifier out of it)")
    unused = sorted(converted.source[p] for p in set(converted.arrays) - set(loaded))
    return new, LoadReport(file, loaded, missing, unused, converted.ignored)


def load_pretrained(path: str | Path, params: Any, num_blocks: int = 16,
                    classifier: str = "fc") -> tuple[Any, LoadReport]:
    """Read `path`, convert, and fill `params`: returns (params, report). For jtl's Network
    the backbone loads and `head/*` is reported missing, the ImageNet `_fc` unused; with
    `classifier="head"` and 1000 classes the published classifier becomes the head."""
    converted = convert(read_checkpoint(path), num_blocks, classifier)
    return load_into(params, converted, str(path))
