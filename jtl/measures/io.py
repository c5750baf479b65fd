"""Atomic writes for measures.json, report tables and plots.

A crash (or a parallel reader such as `jtl.report` on a running sweep) must never see a
half-written file: write a temporary sibling, then `os.replace` it over the target.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MEASURES_FILE = "measures.json"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # mkstemp makes the file owner-only (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savefig(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically (the format is fixed, not read from a suffix)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _jsonable(v: Any) -> Any:
    """Floats that JSON cannot hold (inf, nan) become strings rather than invalid JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def write_measures(run_dir: str | os.PathLike, values: Mapping[str, Any]) -> Path:
    """Merge `values` into `<run_dir>/measures.json` (flat keys), keeping earlier measures."""
    path = Path(run_dir) / MEASURES_FILE
    merged: dict[str, Any] = {}
    if path.exists():
        merged.update(json.loads(path.read_text()))
    merged.update({k: _jsonable(v) for k, v in values.items()})
    return atomic_write_text(path, json.dumps(merged, indent=2, sort_keys=True) + "\n")
