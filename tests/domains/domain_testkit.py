"""Shared helpers for the domain tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

# The offline data sits beside the repository: <repo>/../shared/data (see its README.md).
DATA_DIR = (Path(__file__).resolve().parents[2] / "../shared/data").resolve()

# The keys every conf/domain/*.yaml carries, at their defaults.
COMMON = {"shifts": [], "per_class": None, "max_train": None, "val_fraction": 0.1,
          "split_seed": 0, "value_range": None}

# The fake MNIST files: this many train / test images, every class equally often.
FAKE_MNIST = {"train": 300, "t10k": 100}


def write_idx(path: Path, a: np.ndarray) -> None:
    """uint8 array -> gzipped IDX file (magic 0x0000080N, N big-endian sizes, raw bytes)."""
    header = np.asarray([0x800 + a.ndim, *a.shape], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(a, dtype=np.uint8).tobytes())


def fake_mnist(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Small random MNIST-format files in folder/mnist (fast to prepare); returns the arrays."""
    rng = np.random.default_rng(0)
    (folder / "mnist").mkdir(parents=True)
    out = {}
    for stem, n in FAKE_MNIST.items():
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        x[0, 0, 0] = 255
        y = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"mnist/{stem}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"mnist/{stem}-labels-idx1-ubyte.gz", y)
        out[stem] = (x, y)
    return out
