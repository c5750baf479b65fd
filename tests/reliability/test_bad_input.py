"""Bad input caught at domain build time (issue 8): one test per case, each a one-line JtlError.

Each writes an .npz in tmp_path and calls `build_domain` as the trainer does; the message must
name the domain and the file, and say what to change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jtl.domains.base import Domain
from tests.reliability.kit import npz_domain, npz_error


def _images(dtype: type = np.float32, n: int = 40) -> np.ndarray:
    x = np.random.default_rng(0).random((n, 8, 8))
    return x.astype(dtype)


def _build(tmp_path: Path, arrays: dict, **cfg: object) -> Domain:
    return npz_domain(tmp_path, arrays, **cfg)


def _error(tmp_path: Path, arrays: dict, **cfg: object) -> str:
    return npz_error(tmp_path, arrays, **cfg)


def test_nan_pixels(tmp_path: Path) -> None:
    x = _images()
    x[3, 2, 2] = x[7, 0, 0] = np.nan
    msg = _error(tmp_path, {"x": x, "y": np.arange(40) % 4})
    assert "2 NaN" in msg and "train" in msg


def test_inf_pixels(tmp_path: Path) -> None:
    x = _images()
    x[5, 1, 1] = np.inf
    x_test = _images(n=10)
    x_test[0, 0, 0] = -np.inf
    msg = _error(tmp_path, {"x": x, "y": np.arange(40) % 4,
                            "x_test": x_test, "y_test": np.arange(10) % 4})
    assert "1 inf" in msg and "train" in msg


def test_stray_value_above_one_in_unit_floats(tmp_path: Path) -> None:
    x = _images()
    x[9, 4, 4] = 1.5
    msg = _error(tmp_path, {"x": x, "y": np.arange(40) % 4})
    assert "[0, 1]" in msg and "1.5" in msg and "value_range" in msg


def test_uint16_images_need_a_stated_range(tmp_path: Path) -> None:
    x = (_images(np.float64) * 65535).astype(np.uint16)
    arrays = {"x": x, "y": np.arange(40) % 4}
    msg = _error(tmp_path, arrays)
    assert "uint16" in msg and "value_range" in msg
    # Stated, the range maps 0..65535 onto [0, 1] (not a guessed /255 clipped at 1).
    d = _build(tmp_path, arrays, value_range=[0, 65535])
    all_x = np.concatenate([d.train.x, d.val.x, d.test.x])
    np.testing.assert_allclose(all_x.max(), x.max() / 65535, rtol=1e-5)
    np.testing.assert_allclose(all_x.min(), x.min() / 65535, atol=1e-6)


def test_labels_beyond_num_classes(tmp_path: Path) -> None:
    y = np.arange(40) % 4
    y[11] = 12
    msg = _error(tmp_path, {"x": _images(), "y": y}, num_classes=10)
    assert "label" in msg and "12" in msg and "num_classes" in msg


def test_empty_split(tmp_path: Path) -> None:
    msg = _error(tmp_path, {"x": _images(), "y": np.arange(40) % 4,
                            "x_test": np.zeros((0, 8, 8), np.float32),
                            "y_test": np.zeros(0, np.int64)})
    assert "test split is empty" in msg
