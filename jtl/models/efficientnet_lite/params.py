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
`num_batches_tracked` is ignored. `from_state_dict` is the hook `model.weights=` calls
(`jtl.models.pretrained`, which also reads the file and fills the parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.errors import JtlError
from jtl.models.efficientnet_lite.modeling import LITE_SIZES, block_specs
from jtl.models.pretrained import (
    IGNORE,
    Converted,
    LoadReport,
    load_into,
    match_key,
    read_checkpoint,
)

__all__ = ["KEYS", "Converted", "LoadReport", "convert", "from_state_dict", "load_into",
           "load_pretrained", "read_checkpoint"]

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


def convert(state_dict: Mapping[str, np.ndarray], num_blocks: int,
            classifier: str = "fc") -> Converted:
    """Map every checkpoint key through `KEYS` and transpose; `num_blocks` is the MBConv
    count (16 for Lite0: the head is blocks[num_blocks + 1]). A key no rule and no IGNORED
    pattern matches is refused: the file is another architecture (squeeze-excite B0, say)."""
    arrays, source, ignored, unknown = {}, {}, [], []
    for key, value in state_dict.items():
        hit = match_key(key, KEYS, IGNORED)
        if hit is IGNORE:
            ignored.append(key)
            continue
        if hit is None:
            unknown.append(key)
            continue
        m, template, perm = hit
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


def from_state_dict(state_dict: Mapping[str, np.ndarray], backbone_cls: type) -> Converted:
    """The family hook `jtl.models.pretrained` calls for `model.weights`: the size's MBConv
    count from the class, and the ImageNet `_fc` kept as `fc/...`, a path jtl's Network does
    not have, so it is reported ignored (a task head is new)."""
    width, depth, _ = LITE_SIZES[backbone_cls.size]
    return convert(state_dict, len(block_specs(width, depth)))


def load_pretrained(path: str | Path, params: Any, num_blocks: int = 16,
                    classifier: str = "fc") -> tuple[Any, LoadReport]:
    """Read `path`, convert, and fill `params`: returns (params, report). For jtl's Network
    the backbone loads and `head/*` is reported missing, the ImageNet `_fc` unused; with
    `classifier="head"` and 1000 classes the published classifier becomes the head."""
    converted = convert(read_checkpoint(path), num_blocks, classifier)
    return load_into(params, converted, str(path))
