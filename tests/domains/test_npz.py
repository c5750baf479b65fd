"""The npz loader: user arrays, with or without their own test split, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from domain_testkit import COMMON

from jtl.domains.base import LoadContext, build_domain
from jtl.errors import JtlError


def _cfg(path: object, **over: object) -> dict:
    return {"name": "npz", "path": str(path), **COMMON, "test_fraction": 0.25, **over}


def _ctx(tmp_path: Path) -> LoadContext:
    return LoadContext(data_dir=tmp_path, tfds_dir=tmp_path / "tfds")


def test_with_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (100, 12, 12, 3), dtype=np.uint8),
             y=np.arange(100) % 4, x_test=rng.integers(0, 256, (20, 12, 12, 3), dtype=np.uint8),
             y_test=np.arange(20) % 4)
    d = build_domain(_cfg(tmp_path / "d.npz"), (28, 28, 1), _ctx(tmp_path))
    assert (len(d.train), len(d.val), len(d.test)) == (90, 10, 20)
    assert d.train.x.shape[1:] == (28, 28, 1) and d.num_classes == 4
    assert d.train.x.min() >= 0.0 and d.train.x.max() <= 1.0


def test_without_test_split_and_relative_path(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((80, 28, 28)),
             y=np.arange(80) % 5)
    d = build_domain(_cfg("d.npz", num_classes=7), (28, 28, 1), _ctx(tmp_path))  # under data_dir
    assert len(d.test) == 20 and len(d.train) + len(d.val) == 60
    assert d.num_classes == 7


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(JtlError, match="not found"):
        build_domain(_cfg(tmp_path / "nope.npz"), (28, 28, 1), _ctx(tmp_path))
    with pytest.raises(JtlError, match="needs `path`"):
        build_domain(_cfg(""), (28, 28, 1), _ctx(tmp_path))


@pytest.mark.parametrize("arrays,match", [
    ({"images": np.zeros((4, 8, 8)), "y": np.zeros(4, int)}, "lacks the arrays"),
    ({"x": np.zeros((4, 8, 8)), "y": np.zeros(3, int)}, "has 4 examples"),
    ({"x": np.zeros((4, 8)), "y": np.zeros(4, int)}, "must be"),
    ({"x": np.zeros((4, 8, 8)), "y": np.zeros(4)}, "integer labels"),
    ({"x": np.zeros((4, 8, 8)), "y": np.zeros(4, int), "x_test": np.zeros((2, 8, 8))},
     "both"),
])
def test_bad_arrays(arrays: dict, match: str, tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(JtlError, match=match):
        build_domain(_cfg(tmp_path / "bad.npz"), (28, 28, 1), _ctx(tmp_path))


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_text("hello")
    with pytest.raises(JtlError, match="not a readable"):
        build_domain(_cfg(tmp_path / "junk.npz"), (28, 28, 1), _ctx(tmp_path))
