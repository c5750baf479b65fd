"""Data checks that need the data (issue 21): label arrays that are not class ids, classes
that have no example to train on, budgets beyond what exists, a value range float32 cannot
hold, and label spaces that differ between source and target under a method that reads no
target labels. Each is one `JtlError` line naming the domain, the file and the way out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jtl.domains.base import Domain
from jtl.errors import JtlError
from tests.reliability.kit import npz_domain, npz_error


def _images(n: int = 40) -> np.ndarray:
    return np.random.default_rng(0).random((n, 8, 8)).astype(np.float32)


def _build(tmp_path: Path, arrays: dict, **cfg: object) -> Domain:
    return npz_domain(tmp_path, arrays, "target", **cfg)


def _error(tmp_path: Path, arrays: dict, **cfg: object) -> str:
    return npz_error(tmp_path, arrays, "target", **cfg)


def test_labels_shaped_n_by_1_say_how_to_flatten_them(tmp_path: Path) -> None:
    msg = _error(tmp_path, {"x": _images(), "y": (np.arange(40) % 4).reshape(40, 1)})
    assert "(40, 1)" in msg and "reshape(-1)" in msg


def test_one_hot_labels_say_argmax(tmp_path: Path) -> None:
    y = np.eye(4, dtype=np.float32)[np.arange(40) % 4]
    msg = _error(tmp_path, {"x": _images(), "y": y})
    assert "one-hot" in msg and "argmax(axis=1)" in msg


@pytest.mark.parametrize("ids", ["consecutive", "large"])
def test_sample_ids_saved_as_labels_are_refused(tmp_path: Path, ids: str) -> None:
    """0..N-1, or unique large ints (whose max + 1 classes once meant a 36 TB allocation)."""
    y = np.arange(40) if ids == "consecutive" else 10**12 + np.arange(40) * 7919
    msg = _error(tmp_path, {"x": _images(), "y": y})
    assert "sample ids" in msg and "num_classes" in msg


def test_stated_num_classes_allows_few_examples_per_class(tmp_path: Path) -> None:
    """The plausibility check is about an inferred class count: a stated one is the user's."""
    d = _build(tmp_path, {"x": _images(30), "y": np.arange(30) % 15,
                          "x_test": _images(30), "y_test": np.arange(30) % 15},
               num_classes=15, val_fraction=0)
    assert d.num_classes == 15


def test_a_requested_class_without_training_examples_is_named(tmp_path: Path) -> None:
    """`classes=[8,9]` where the train split has no 9 (the test split has): once a one-class
    run reported at 48.7%."""
    y = np.arange(40) % 9  # 0..8
    msg = _error(tmp_path, {"x": _images(), "y": y, "x_test": _images(20),
                            "y_test": np.arange(20) % 10}, classes=[8, 9])
    assert "class 9" in msg and "no training example" in msg and "target.classes" in msg


def test_per_class_beyond_what_exists_names_the_fewest_class(tmp_path: Path) -> None:
    y = np.r_[np.zeros(25, int), np.ones(10, int), np.full(5, 2)]
    msg = _error(tmp_path, {"x": _images(), "y": y, "x_test": _images(9),
                            "y_test": np.arange(9) % 3}, per_class=1000)
    assert "per_class=1000" in msg and "class 2" in msg and "5 training examples" in msg


def test_per_class_within_what_exists_is_exact(tmp_path: Path) -> None:
    y = np.r_[np.zeros(25, int), np.ones(10, int), np.full(5, 2)]
    d = _build(tmp_path, {"x": _images(), "y": y, "x_test": _images(9),
                          "y_test": np.arange(9) % 3}, per_class=5, val_fraction=0)
    assert np.bincount(d.train.y).tolist() == [5, 5, 5]


@pytest.mark.parametrize("rng", [[0, 1e39], [0, 1e-46]])
def test_value_range_float32_cannot_hold_is_refused(tmp_path: Path, rng: list) -> None:
    """1e39 overflows float32 (every image became 0); a width of 1e-46 rounds to 0 (0/0)."""
    x = _images() if rng[1] > 1 else np.zeros((40, 8, 8), np.float32)
    msg = _error(tmp_path, {"x": x, "y": np.arange(40) % 4}, value_range=rng)
    assert "value_range" in msg and "float32" in msg


def _domains(fast_cfg, *overrides: str):
    from jtl.train.trainer import load_domains

    return load_domains(fast_cfg(*overrides))


def test_disjoint_label_sets_under_an_adaptation_method_are_refused(fast_cfg) -> None:
    """`source.classes=[0..4] target.classes=[5..9] method=dann`: both relabelled 0..4, so
    only the original class ids tell that the head would score digits 5-9 as 0-4."""
    with pytest.raises(JtlError) as e:
        _domains(fast_cfg, "method=dann", "source.classes=[0,1,2,3,4]",
                 "target.classes=[5,6,7,8,9]")
    msg = str(e.value)
    assert "\n" not in msg and "[0, 1, 2, 3, 4]" in msg and "[5, 6, 7, 8, 9]" in msg
    assert "target_only" in msg


def test_partly_disjoint_label_sets_are_refused_too(fast_cfg) -> None:
    with pytest.raises(JtlError, match="class ids"):
        _domains(fast_cfg, "method=source_only", "source.classes=[0,1,2]",
                 "target.classes=[0,1,3]")


def test_methods_reading_target_labels_accept_other_classes(fast_cfg) -> None:
    source, target = _domains(fast_cfg, "method=target_only", "source.classes=[0,1,2,3,4]",
                              "target.classes=[5,6,7,8,9]")
    assert source.class_ids == (0, 1, 2, 3, 4) and target.class_ids == (5, 6, 7, 8, 9)
    same = _domains(fast_cfg, "method=dann", "source.classes=[3,4]", "target.classes=[3,4]")
    assert same[0].class_ids == same[1].class_ids == (3, 4)
