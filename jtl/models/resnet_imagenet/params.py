"""ResNet checkpoints in the torchvision / timm layout or the Hugging Face `transformers` one
-> jtl paths. The layout is read from the keys (`layout`).

    torchvision, timm (e.g. hf://timm/resnet50.tv_in1k)    jtl: backbone/blocks/...
    conv1, bn1                                             0/conv, 0/bn
    layer{s}.{j}.conv{k}, .bn{k}                           {b}/conv{k}, {b}/bn{k}
    layer{s}.{j}.downsample.0, .downsample.1               {b}/downsample/conv, .../bn
    fc                                                     fc (or `classifier=`)

    transformers (microsoft/resnet-50; no `resnet.` in a bare ResNetModel)
    resnet.embedder.embedder.convolution, .normalization   0/conv, 0/bn
    resnet.encoder.stages.{s-1}.layers.{j}.layer.{k-1}.*   {b}/conv{k}, {b}/bn{k}
    resnet.encoder.stages.{s-1}.layers.{j}.shortcut.*      {b}/downsample/conv, .../bn
    classifier.1                                           fc

b = 1 + (blocks of the stages before s) + j (`modeling.block_index`). Transposes: conv (O, I,
kH, kW) -> HWIO; fc (out, in) -> (in, out). BatchNorm weight/bias -> scale/bias (parameters),
running_mean/var -> mean/var (the BN state jtl keeps beside the parameters);
`num_batches_tracked` is ignored. `from_state_dict` is the hook `model.weights=` calls
(`jtl.models.pretrained`, which reads the file, fills the parameters and reports them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.errors import JtlError
from jtl.models.pretrained import (
    IGNORE,
    Converted,
    LoadReport,
    load_into,
    match_key,
    read_checkpoint,
)
from jtl.models.resnet_imagenet.modeling import SIZES, block_index

__all__ = ["KEYS", "Converted", "LoadReport", "convert", "from_state_dict", "layout",
           "load_into", "load_pretrained", "read_checkpoint"]

_CONV = (2, 3, 1, 0)
_LINEAR = (1, 0)
_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_BN_RE = r"\.(?P<leaf>weight|bias|running_mean|running_var)"
_TV = r"layer(?P<s>[1-4])\.(?P<j>\d+)\."
_HF = r"(?:resnet\.)?encoder\.stages\.(?P<s0>[0-3])\.layers\.(?P<j>\d+)\."
_HF_STEM = r"(?:resnet\.)?embedder\.embedder\."

# layout -> (checkpoint key regex, jtl path template, transpose). Templates are str.format'ed
# with the match's groups: s (stage, 1-based; s0 = s - 1), j, k (conv of the block, 1-based;
# k0 = k - 1), leaf (a BN leaf renamed by _BN), plus b (the block's place in `blocks`) and fc.
KEYS: dict[str, list[tuple[str, str, tuple[int, ...] | None]]] = {
    "torchvision": [
        (r"conv1\.weight", "backbone/blocks/0/conv/kernel", _CONV),
        (r"bn1" + _BN_RE, "backbone/blocks/0/bn/{leaf}", None),
        (_TV + r"conv(?P<k>[1-3])\.weight", "backbone/blocks/{b}/conv{k}/kernel", _CONV),
        (_TV + r"bn(?P<k>[1-3])" + _BN_RE, "backbone/blocks/{b}/bn{k}/{leaf}", None),
        (_TV + r"downsample\.0\.weight", "backbone/blocks/{b}/downsample/conv/kernel", _CONV),
        (_TV + r"downsample\.1" + _BN_RE, "backbone/blocks/{b}/downsample/bn/{leaf}", None),
        (r"fc\.weight", "{fc}/kernel", _LINEAR),
        (r"fc\.bias", "{fc}/bias", None),
    ],
    "huggingface": [
        (_HF_STEM + r"convolution\.weight", "backbone/blocks/0/conv/kernel", _CONV),
        (_HF_STEM + r"normalization" + _BN_RE, "backbone/blocks/0/bn/{leaf}", None),
        (_HF + r"layer\.(?P<k0>[0-2])\.convolution\.weight", "backbone/blocks/{b}/conv{k}/kernel",
         _CONV),
        (_HF + r"layer\.(?P<k0>[0-2])\.normalization" + _BN_RE,
         "backbone/blocks/{b}/bn{k}/{leaf}", None),
        (_HF + r"shortcut\.convolution\.weight", "backbone/blocks/{b}/downsample/conv/kernel",
         _CONV),
        (_HF + r"shortcut\.normalization" + _BN_RE, "backbone/blocks/{b}/downsample/bn/{leaf}",
         None),
        (r"classifier\.1\.weight", "{fc}/kernel", _LINEAR),
        (r"classifier\.1\.bias", "{fc}/bias", None),
    ],
}
IGNORED = (r".*\.num_batches_tracked",)


def layout(keys: Any) -> str:
    """'torchvision' (also timm's ResNets) or 'huggingface', from the stem's key."""
    keys = list(keys)
    if any(re.fullmatch(_HF_STEM + r"convolution\.weight", k) for k in keys):
        return "huggingface"
    if "conv1.weight" in keys:
        return "torchvision"
    raise JtlError(f"checkpoint keys {sorted(keys)[:4]} are neither torchvision's ResNet "
                   "layout (conv1.weight, layer1.0...) nor transformers' (resnet.embedder..., "
                   "resnet.encoder.stages...); give a ResNet checkpoint in one of them")


def convert(state_dict: Mapping[str, np.ndarray], depth: int,
            classifier: str = "fc") -> Converted:
    """Map every checkpoint key of ResNet-`depth` through the table of its layout and
    transpose. A key no rule and no IGNORED pattern matches, or a block the architecture
    does not have (layer1.2 in ResNet-18, conv3 in a basic block), is refused: the file is
    another ResNet."""
    depths, bottleneck = SIZES[depth]
    table = KEYS[layout(state_dict)]
    arrays, source, ignored, unknown = {}, {}, [], []
    for key, value in state_dict.items():
        hit = match_key(key, table, IGNORED)
        if hit is IGNORE:
            ignored.append(key)
            continue
        if hit is None:
            unknown.append(key)
            continue
        m, template, perm = hit
        g = {k: v for k, v in m.groupdict().items() if v is not None}
        if "leaf" in g:
            g["leaf"] = _BN[g["leaf"]]
        if "s0" in g:
            g["s"] = str(int(g.pop("s0")) + 1)
        if "k0" in g:
            g["k"] = str(int(g.pop("k0")) + 1)
        b = None
        if "s" in g:
            s, j = int(g["s"]), int(g["j"])
            if j >= depths[s - 1] or (not bottleneck and int(g.get("k", 1)) > 2):
                unknown.append(key)
                continue
            b = block_index(s, j, depths)
        path = template.format(**g, b=b, fc=classifier)
        arr = np.asarray(value)
        arrays[path] = arr.transpose(perm) if perm is not None else arr
        source[path] = key
    if unknown:
        raise JtlError(f"checkpoint keys {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
                       f"({len(unknown)}) are not ResNet-{depth} (blocks {list(depths)}); give "
                       "the weights of this depth")
    return Converted(arrays, source, sorted(ignored))


def from_state_dict(state_dict: Mapping[str, np.ndarray], backbone_cls: type) -> Converted:
    """The family hook `jtl.models.pretrained` calls for `model.weights`: the depth from the
    class, and the ImageNet `fc` kept as `fc/...`, a path jtl's Network does not have, so it
    is reported ignored (a task head is new)."""
    return convert(state_dict, backbone_cls.depth)


def load_pretrained(path: str | Path, params: Any, depth: int = 50,
                    classifier: str = "fc") -> tuple[Any, LoadReport]:
    """Read `path`, convert, and fill `params`: returns (params, report). For jtl's Network
    the backbone loads and `head/*` is reported missing, the ImageNet fc unused; with
    `classifier="head"` and 1000 classes the published classifier becomes the head."""
    converted = convert(read_checkpoint(path), depth, classifier)
    return load_into(params, converted, str(path))
