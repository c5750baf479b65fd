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
    ({"images": np.zeros((4, 8, 8)), "y": np.zeros(4, int)}, "lacks the array 'x'"),
    ({"x": np.zeros((4, 8, 8)), "y": np.zeros(3, int)}, "4 images but 3 labels"),
    ({"x": np.zeros((4, 8)), "y": np.zeros(4, int)}, "must be"),
    ({"x": np.zeros((4, 8, 8)), "y": np.zeros(4)}, "integer class ids"),
    ({"x": np.zeros((4, 8, 8)), "y": -np.ones(4, int)}, "outside"),
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


def test_value_range_and_legacy_max_value(tmp_path: Path) -> None:
    """`value_range` maps [lo, hi] onto [0, 1]; the older `max_value: M` means [0, M]."""
    x = np.linspace(-1.0, 3.0, 80 * 64).reshape(80, 8, 8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(80) % 4)
    d = build_domain(_cfg("d.npz", value_range=[-1, 3], val_fraction=0.0), (8, 8, 1),
                     _ctx(tmp_path))
    all_x = np.concatenate([d.train.x, d.test.x])
    assert all_x.min() == 0.0 and all_x.max() == 1.0
    np.savez(tmp_path / "e.npz", x=(x + 1) * 4, y=np.arange(80) % 4)
    e = build_domain(_cfg("e.npz", max_value=16, val_fraction=0.0), (8, 8, 1), _ctx(tmp_path))
    np.testing.assert_allclose(e.train.x, d.train.x, atol=1e-6)
    with pytest.raises(JtlError, match="lie outside"):  # a stated range must hold
        build_domain(_cfg("d.npz", value_range=[0, 3]), (8, 8, 1), _ctx(tmp_path))
    with pytest.raises(JtlError, match=r"value_range=\[3\]: must be \[lo, hi\] with lo < hi"):
        build_domain(_cfg("d.npz", value_range=[3]), (8, 8, 1), _ctx(tmp_path))
