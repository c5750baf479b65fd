"""A run's inputs in its identity: a user's files and `init_from`'s checkpoint, by content.

The built-in data sets are checked against their own sha256 sums on every load
(`jtl/domains/_offline.py`); a user's files and another run's checkpoint are not. So before a
run dir is claimed, `record` resolves each path that names one, once and absolutely (as given,
then under `paths.data_dir` for data files), saves it in place of the path as typed, and adds
the sha256 of its content under the config key `inputs`, which the identity covers:

    inputs:
      target.path: sha256:...        # an npz domain's file
      method.attributes: sha256:...  # a DAP attribute table given as a path
      init_from: sha256:...          # init_from's checkpoint at the step it loads
      model.weights: sha256:...      # the pretrained safetensors file (a hub id: its cached file)

A changed input then refuses to resume like a changed config (`rundir.claim` names
`inputs.<key>`), and `verify` stops a reader of the run (`load_run`, `jtl.measure`) from
reading another file than the one the run was trained on. A config with nothing to record
(built-in domains, no `init_from`) is left as it is: its fingerprint does not change.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from jtl import rundir
from jtl.domains.base import load_context, locate
from jtl.errors import JtlError

KEY = "inputs"
# Config keys that name a user's file or folder: by domain name (in `source` / `target`;
# searched as given, then under paths.data_dir) and by method name (as given).
DOMAIN_FILES: dict[str, tuple[str, ...]] = {"npz": ("path",), "imagefolder": ("root",),
                                          "text": ("path", "test_path")}
METHOD_FILES: dict[str, tuple[str, ...]] = {"dap": ("attributes",)}
INIT_FROM = "init_from"
WEIGHTS = "weights"  # model.weights: a pretrained checkpoint (jtl.models.pretrained)

# sha256 of a file by (path, size, mtime): a sweep's cells and a run's readers hash it once.
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def content_hash(path: Path) -> str:
    """'sha256:<hex>' of a file's bytes, or of a folder's files (each one's relative path and
    sha256, in sorted order; links not followed): an image folder, a checkpoint."""
    if path.is_file():
        return "sha256:" + _file_sha256(path)
    h = hashlib.sha256()
    files = sorted(Path(root, name) for root, _, names in os.walk(path) for name in names)
    for f in files:
        if f.is_file():
            h.update(f"{f.relative_to(path).as_posix()}\0{_file_sha256(f)}\n".encode())
    return "sha256:" + h.hexdigest()


def init_checkpoint(run_dir: Any, step: Any = None) -> Path | None:
    """The checkpoint folder `init_from` loads: its completed step, or `init_from_step`; None
    while there is none (a run not completed, a missing dir or step)."""
    run = Path(str(run_dir))
    if step is None:
        step = rundir.completed_step(run)
    try:
        path = run / rundir.CHECKPOINTS / str(int(step))
    except (TypeError, ValueError):
        return None
    return path if path.is_dir() else None


def _user_files(cfg: Mapping[str, Any]) -> Iterator[tuple[str, dict, str, bool]]:
    """(dotted key, its section, the key, whether it is also searched under data_dir)."""
    for role in ("source", "target"):
        section = cfg.get(role)
        if isinstance(section, dict):
            for key in DOMAIN_FILES.get(str(section.get("name")), ()):
                if section.get(key) is not None:
                    yield f"{role}.{key}", section, key, True
    method = cfg.get("method")
    if isinstance(method, dict):
        for key in METHOD_FILES.get(str(method.get("name")), ()):
            # A name without a suffix is a table in conf/ (jtl.methods.dap.load_attributes).
            if method.get(key) is not None and Path(str(method[key])).suffix:
                yield f"method.{key}", method, key, False


def _get(cfg: Mapping[str, Any] | None, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _hash_or_none(path: Path | None) -> str | None:
    try:
        return None if path is None else content_hash(path)
    except OSError:  # unreadable: the loader says why when it reads it
        return None


def record(cfg: Mapping[str, Any], run_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """`cfg` with its user files and `init_from` resolved to absolute paths and their content
    hashes under `inputs` (replacing any there); unchanged when there is nothing to record.

    An input that cannot be read now (deleted data, a source run being retrained) keeps the
    record of `run_dir`'s saved config when the path saved there cannot be read either: its
    completed result is still returned, and training on it fails where it is loaded."""
    out = copy.deepcopy(dict(cfg))
    out.pop(KEY, None)
    saved = _saved_config(run_dir)
    found: dict[str, str] = {}
    data_dir: Path | None = None
    for dotted, section, key, in_data_dir in _user_files(out):
        if in_data_dir and data_dir is None:
            data_dir = load_context(out.get("paths") or {}).data_dir
        search = data_dir if in_data_dir else None
        path = locate(str(section[key]), search)
        digest = _hash_or_none(path)
        if digest is not None:
            section[key], found[dotted] = str(path), digest
        elif (kept := _kept(saved, dotted, lambda p, s=search: locate(str(p), s))) is not None:
            section[key], found[dotted] = kept
    model = out.get("model")
    if isinstance(model, dict) and model.get(WEIGHTS):
        path = _weights_or_none(str(model[WEIGHTS]))
        digest = _hash_or_none(path)
        if digest is not None:  # a hub id stays as typed; a local file or folder absolute
            if not str(model[WEIGHTS]).startswith("hf://"):
                model[WEIGHTS] = os.path.abspath(os.path.expanduser(str(model[WEIGHTS])))
            found[f"model.{WEIGHTS}"] = digest
        elif (kept := _kept(saved, f"model.{WEIGHTS}",
                            lambda p: _weights_or_none(str(p)))) is not None:
            model[WEIGHTS], found[f"model.{WEIGHTS}"] = kept
    if out.get(INIT_FROM):
        out[INIT_FROM] = os.path.abspath(os.path.expanduser(str(out[INIT_FROM])))
        digest = _hash_or_none(init_checkpoint(out[INIT_FROM], out.get("init_from_step")))
        step = (saved or {}).get("init_from_step")
        if digest is not None:
            found[INIT_FROM] = digest
        elif (kept := _kept(saved, INIT_FROM, lambda p: init_checkpoint(p, step))) is not None:
            out[INIT_FROM], found[INIT_FROM] = kept
    if found:
        out[KEY] = found
    return out


def _weights_or_none(spec: str) -> Path | None:
    """The safetensors file `model.weights` names (a hub id: fetched into its cache now), or
    None when it cannot be had: the loader's one line says why, where it is read."""
    from jtl.models.pretrained import weights_file

    try:
        return weights_file(spec)
    except JtlError:
        return None


def _saved_config(run_dir: str | os.PathLike | None) -> dict[str, Any] | None:
    if run_dir is None or not (Path(run_dir) / rundir.CONFIG).is_file():
        return None
    try:
        return rundir.load_config(run_dir)
    except JtlError:  # damaged: the claim says so
        return None


def _kept(saved: Mapping[str, Any] | None, dotted: str,
          find: Callable[[Any], Path | None]) -> tuple[str, str] | None:
    """(path, hash) saved for `dotted`, when that saved path (`find` locates it) cannot be
    read now either."""
    recorded = (saved or {}).get(KEY)
    path = _get(saved, dotted)
    if not isinstance(recorded, Mapping) or dotted not in recorded or path is None:
        return None
    return None if _hash_or_none(find(path)) is not None else (str(path), recorded[dotted])


def verify(cfg: Mapping[str, Any]) -> None:
    """The recorded files are still the ones the run was trained on (`init_from` aside: it
    is read only when training starts, right after it is recorded). A missing file is left to
    its loader's error."""
    recorded = cfg.get(KEY)
    if not isinstance(recorded, Mapping):
        return
    for dotted, expected in recorded.items():
        value = _get(cfg, dotted)
        if dotted == INIT_FROM or value is None or not Path(str(value)).exists():
            continue
        path = _weights_or_none(str(value)) if dotted == f"model.{WEIGHTS}" else Path(str(value))
        actual = _hash_or_none(path)
        if actual is not None and actual != expected:
            raise JtlError(
                f"{dotted}={value} changed since this run recorded it ({str(expected)[:19]}..., "
                f"now {actual[:19]}...): the run was trained on other content. Restore that "
                "file, or train a new run on this one (another hydra.run.dir, or "
                "overwrite=true).")
