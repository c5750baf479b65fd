"""A domain from the user's own arrays in one .npz file: the quickest way to bring new data.

Arrays: `x` (N,H,W) or (N,H,W,C) and integer `y` (N,); optionally `x_test`/`y_test`,
otherwise `build_domain` holds out `test_fraction` of the examples deterministically.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.domains.base import DOMAINS, LoadContext, RawData
from jtl.errors import JtlError


def _resolve(path: str, ctx: LoadContext) -> Path:
    """As given (absolute, or relative to the working directory), else under `data_dir`."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [p, Path(ctx.data_dir) / p]
    for c in candidates:
        if c.is_file():
            return c
    tried = ", ".join(str(c.resolve()) for c in candidates)
    raise JtlError(f"npz domain: file '{path}' not found (looked at {tried}). "
                   f"Set `<source|target>.path=/absolute/path/to/file.npz`.")


def _check_pair(x: np.ndarray, y: np.ndarray, xk: str, yk: str, path: Path) -> None:
    if x.ndim not in (3, 4):
        raise JtlError(f"{path}: '{xk}' must be (N,H,W) or (N,H,W,C), got shape {x.shape}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise JtlError(f"{path}: '{yk}' must be 1-D integer labels, got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise JtlError(f"{path}: '{xk}' has {len(x)} examples but '{yk}' has {len(y)}")
    if len(y) and y.min() < 0:
        raise JtlError(f"{path}: '{yk}' has negative labels; use class ids 0..K-1")


@DOMAINS.register("npz")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """Config keys: path (required), num_classes and max_value (null: inferred)."""
    if not cfg.get("path"):
        raise JtlError("the `npz` domain needs `path`, e.g. `target.path=/data/mine.npz`")
    path = _resolve(str(cfg["path"]), ctx)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise JtlError(f"{path} is not a readable .npz file ({e})") from e
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise JtlError(f"{path} lacks the arrays {missing}; it has {sorted(arrays)}. "
                       f"Save it with np.savez(path, x=images, y=labels[, x_test=, y_test=]).")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise JtlError(f"{path}: give both 'x_test' and 'y_test', or neither")
    _check_pair(arrays["x"], arrays["y"], "x", "y", path)
    x_te = y_te = None
    if "x_test" in arrays:
        x_te, y_te = arrays["x_test"], arrays["y_test"]
        _check_pair(x_te, y_te, "x_test", "y_test", path)
        if x_te.shape[1:] != arrays["x"].shape[1:]:
            raise JtlError(f"{path}: 'x_test' images are {x_te.shape[1:]}, 'x' images are "
                           f"{arrays['x'].shape[1:]}")
    num_classes = cfg.get("num_classes")
    max_value = cfg.get("max_value")
    return RawData(x_train=arrays["x"], y_train=arrays["y"], x_test=x_te, y_test=y_te,
                   num_classes=None if num_classes is None else int(num_classes),
                   max_value=None if max_value is None else float(max_value))
