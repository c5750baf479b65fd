"""Offline MNIST: the fixed 8000/2000 split of t10k, read back through TFDS."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from jtl.domains._builders import mnist_split_indices
from jtl.domains.base import DOMAINS, Domain, LoadContext


def _raw_t10k(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(data_dir / "mnist/t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read()[16:], np.uint8).reshape(10_000, 28, 28)
    with gzip.open(data_dir / "mnist/t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read()[8:], np.uint8)
    return x, y


def test_split_is_a_fixed_mix_of_both_halves() -> None:
    idx = mnist_split_indices()
    tr, te = idx["train"], idx["test"]
    assert len(tr) == 8000 and len(te) == 2000
    assert len(np.union1d(tr, te)) == 10_000
    # Both writer populations (first/last 5000 of t10k) reach the test split.
    assert 900 < (te < 5000).sum() < 1100
    # Pinned: changing the split silently would mix results; bump the builder VERSION instead.
    assert te[:5].tolist() == [0, 13, 21, 25, 26]


def test_raw_arrays_match_the_idx_files(ctx: LoadContext) -> None:
    raw = DOMAINS.get("mnist")({}, ctx)
    x, y = _raw_t10k(ctx.data_dir)
    idx = mnist_split_indices()
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (8000, 28, 28, 1)
    assert (raw.x_train[..., 0] == x[idx["train"]]).all()
    assert (raw.y_train == y[idx["train"]]).all()
    assert (raw.x_test[..., 0] == x[idx["test"]]).all()
    assert (raw.y_test == y[idx["test"]]).all()
    assert raw.num_classes == 10 and raw.max_value == 255.0


def test_built_domain(mnist: Domain) -> None:
    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (7200, 800, 2000)
    for s in (mnist.train, mnist.val, mnist.test):
        assert s.x.shape[1:] == (28, 28, 1) and s.x.dtype == np.float32
        assert s.x.min() >= 0.0 and s.x.max() == 1.0
        assert s.y.dtype == np.int32 and set(np.unique(s.y)) == set(range(10))
    assert mnist.num_classes == 10
