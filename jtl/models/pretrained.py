"""Pretrained weights from config: `model.weights=` a file, a Hugging Face folder, or a Hub id.

Where the weights come from (`weights_file`):
- a `.safetensors` file (as given, or relative to the working dir);
- a folder in the Hugging Face layout (`config.json` + `model.safetensors`);
- `hf://<org>/<name>[@<revision>]`: the repository's `model.safetensors` through
  `huggingface_hub`, from its cache (`~/.cache/huggingface`, `$HF_HOME`) when there, else
  downloaded into it; offline and not cached is one line saying how to get the file.

How they become jtl parameters: the model family's own converter, found from the model's
folder: the registered backbone class lives in `jtl/models/<family>/modeling.py`, and
`jtl/models/<family>/params.py` has `from_state_dict(state_dict, backbone_cls) -> Converted`
(checkpoint keys -> jtl paths, transposed: a table of regexes, bonsai style). So a new family
with published weights is a folder, not an edit here. `load_into` fills every parameter path
the checkpoint has (a shape mismatch names the key); the others (the task head, a method's
modules) keep their fresh values and are reported as new; checkpoint tensors the network has
no place for (ImageNet's 1000-way classifier under a 31-way head) are reported as ignored.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jtl.errors import JtlError
from jtl.models.base import path_str

HF = "hf://"
HF_FILE = "model.safetensors"


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


IGNORE = "ignored"  # `match_key`'s answer for a key the IGNORED patterns cover


def match_key(key: str, table: Any, ignored: Any) -> Any:
    """A family's conversion table against one checkpoint key: (match, template, transpose)
    of its one matching rule (the rules are disjoint), IGNORE for a key an `ignored` regex
    covers, None for a key no rule knows. Every family's `params.convert` loops over this."""
    if any(re.fullmatch(p, key) for p in ignored):
        return IGNORE
    hits = [(m, template, perm) for pat, template, perm in table if (m := re.fullmatch(pat, key))]
    if not hits:
        return None
    (hit,) = hits
    return hit


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


def weights_file(spec: str) -> Path:
    """The safetensors file `model.weights` names (absolute); one-line error otherwise."""
    if spec.startswith(HF):
        return _hub_file(spec)
    p = Path(os.path.abspath(Path(spec).expanduser()))
    if p.is_dir():
        if not (p / HF_FILE).is_file():
            has = sorted(f.name for f in p.iterdir())[:6]
            raise JtlError(f"model.weights={spec}: a folder without {HF_FILE} (it holds "
                           f"{has}); give a Hugging Face-layout folder (config.json + "
                           f"{HF_FILE}) or the .safetensors file itself")
        return p / HF_FILE
    if not p.is_file():
        raise JtlError(f"model.weights={spec}: no such file or folder; give a .safetensors "
                       f"file, a Hugging Face folder, or hf://<org>/<name>")
    return p


def _hub_file(spec: str) -> Path:
    """`hf://org/name[@rev]`'s model.safetensors: the cached copy, else a download."""
    from huggingface_hub import constants, hf_hub_download

    repo, _, revision = spec[len(HF):].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise JtlError(f"model.weights={spec}: write hf://<org>/<name>, e.g. "
                       "hf://timm/resnet50.tv_in1k")
    args = {"repo_id": repo, "filename": HF_FILE, "revision": revision or None}
    try:
        return Path(hf_hub_download(**args, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError): download, when online
        pass
    try:
        if constants.HF_HUB_OFFLINE:
            raise OSError("HF_HUB_OFFLINE is set")
        _reachable(constants.ENDPOINT)  # fail fast offline: the hub client retries for ~25 s
        return Path(hf_hub_download(**args, etag_timeout=5))
    except Exception as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise JtlError(
            f"model.weights={spec}: {HF_FILE} of {repo} is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and cannot be downloaded ({type(e).__name__}: {why}). "
            f"Online, run `hf download {repo} {HF_FILE}` (fills that cache; copy it here), or "
            "give model.weights=<a local .safetensors file>") from None


def _reachable(endpoint: str, timeout: float = 3.0) -> None:
    """Raise OSError unless `endpoint`'s host accepts a connection within `timeout`."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise OSError(f"{url.hostname} unreachable: {e}") from None


def converter(backbone_cls: type) -> Any:
    """The `params` module of the backbone's family folder (`jtl/models/<family>/`)."""
    package = backbone_cls.__module__.rpartition(".")[0]
    try:
        module = importlib.import_module(f"{package}.params")
    except ModuleNotFoundError:
        module = None
    if package == "jtl.models" or not hasattr(module, "from_state_dict"):
        raise JtlError(f"model.weights: model {backbone_cls.__name__} has no checkpoint "
                       f"converter (a jtl/models/<family>/params.py with from_state_dict); "
                       "train it from scratch (model.weights=null)")
    return module


def load(params: Any, spec: str, backbone_cls: type) -> tuple[Any, dict[str, Any]]:
    """`params` with the checkpoint's tensors loaded, and the summary.json entry: `path`,
    `sha256`, `loaded` (count), `new` (paths left fresh), `ignored` (checkpoint keys not
    loaded), `not_converted` (count of keys the converter drops, e.g. BN batch counters)."""
    from jtl.inputs import content_hash

    path = weights_file(spec)
    converted = converter(backbone_cls).from_state_dict(read_checkpoint(path), backbone_cls)
    params, report = load_into(params, converted, spec)
    if not report.loaded:
        raise JtlError(f"model.weights={spec}: no tensor of it fits a parameter of "
                       f"{backbone_cls.__name__}; give this model's weights")
    return params, {"path": spec if spec.startswith(HF) else str(path),
                    "sha256": content_hash(path).removeprefix("sha256:"),
                    "loaded": len(report.loaded), "new": report.missing,
                    "ignored": report.unused, "not_converted": len(report.ignored)}

