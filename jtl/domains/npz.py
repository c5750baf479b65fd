"""A domain from the user's own arrays in one .npz file: the quickest way to bring new data.

Arrays: `x` (N,H,W) or (N,H,W,C) and integer `y` (N,); optionally `x_test`/`y_test`,
otherwise `build_domain` holds out `test_fraction` of the examples deterministically. Without
`y` the domain is unlabeled (for self-supervised methods such as simclr, or an unlabeled
target train split beside a labeled `x_test`/`y_test`). Pixel
values: uint8 (0..255), floats in [0, 1], or any numbers with `value_range: [lo, hi]` stated.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.domains.base import DOMAINS, LoadContext, RawData, locate
from jtl.errors import JtlError


def _resolve(path: str, ctx: LoadContext) -> Path:
    """As given (absolute, or relative to the working directory), else under `data_dir` (the
    trainer saves the path found, absolute: `jtl.inputs`)."""
    found = locate(path, ctx.data_dir)
    if found is not None and found.is_file():
        return found
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [p, Path(ctx.data_dir) / p]
    tried = ", ".join(str(c.resolve()) for c in candidates)
    raise JtlError(f"npz domain: file '{path}' not found (looked at {tried}). "
                   f"Set `<source|target>.path=/absolute/path/to/file.npz`.")


@DOMAINS.register("npz")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """Config keys: path (required), num_classes (null: max label + 1). Array checks and the
    value range (`value_range`, a key of every domain) are `build_domain`'s."""
    if not cfg.get("path"):
        raise JtlError("the `npz` domain needs `path`, e.g. `target.path=/data/mine.npz`")
    path = _resolve(str(cfg["path"]), ctx)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise JtlError(f"{path} is not a readable .npz file ({e})") from e
    if "x" not in arrays:
        raise JtlError(f"{path} lacks the array 'x'; it has {sorted(arrays)}. Save it with "
                       f"np.savez(path, x=images[, y=labels][, x_test=, y_test=]).")
    labels = "all"
    if "y" not in arrays:  # unlabeled: placeholder labels no loss may read
        arrays["y"] = np.zeros(len(arrays["x"]), np.int64)
        labels = "test" if "y_test" in arrays else "none"
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise JtlError(f"{path}: give both 'x_test' and 'y_test', or neither")
    x_te = y_te = None
    if "x_test" in arrays:
        x_te, y_te = arrays["x_test"], arrays["y_test"]
        if x_te.shape[1:] != arrays["x"].shape[1:]:
            raise JtlError(f"{path}: 'x_test' images are {x_te.shape[1:]}, 'x' images are "
                           f"{arrays['x'].shape[1:]}")
    num_classes = cfg.get("num_classes")
    # `max_value: M` (before `value_range` existed) still means value_range [0, M].
    max_value = cfg.get("max_value")
    return RawData(x_train=arrays["x"], y_train=arrays["y"], x_test=x_te, y_test=y_te,
                   num_classes=None if num_classes is None else int(num_classes),
                   value_range=None if max_value is None else (0.0, float(max_value)),
                   labels=labels)
