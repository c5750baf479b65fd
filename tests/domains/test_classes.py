"""Class subsets (`classes=[5,6,7,8,9]`): relabelled 0..k-1, the test split keeps every test
example of those classes; `per_class=all` is every example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from domain_testkit import COMMON

from jtl.domains.base import Domain, LoadContext, build_domain
from jtl.errors import JtlError

SHAPE = (8, 8, 1)


def _npz(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Each image's pixel 0 encodes (label, index), so examples can be traced through."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("", 300), ("_test", 120)):
        y = rng.integers(0, 10, n)
        x = np.zeros((n, 8, 8), np.float32)
        x[:, 0, 0] = (np.arange(n) + 1) / 1000.0
        arrays[f"x{split}"], arrays[f"y{split}"] = x, y
    np.savez(tmp_path / "d.npz", **arrays)
    return tmp_path / "d.npz", arrays


def _build(path: Path, tmp_path: Path, **over: object) -> Domain:
    ctx = LoadContext(data_dir=tmp_path, tfds_dir=tmp_path / "tfds")
    return build_domain({"name": "npz", "path": str(path), "num_classes": None, **COMMON,
                         **over}, SHAPE, ctx, role="target")


def test_subset_relabels_to_0_k_and_keeps_every_test_example_of_its_classes(tmp_path):
    path, raw = _npz(tmp_path)
    d = _build(path, tmp_path, classes=[7, 2, 5])
    assert d.num_classes == 3
    ids = np.round(d.test.x[:, 0, 0, 0] * 1000).astype(int) - 1
    expected = np.flatnonzero(np.isin(raw["y_test"], [7, 2, 5]))
    np.testing.assert_array_equal(np.sort(ids), expected)  # every one, nothing else
    mapping = {7: 0, 2: 1, 5: 2}
    np.testing.assert_array_equal(d.test.y, [mapping[c] for c in raw["y_test"][ids]])
    for split in (d.train, d.val):
        idx = np.round(split.x[:, 0, 0, 0] * 1000).astype(int) - 1
        np.testing.assert_array_equal(split.y, [mapping[c] for c in raw["y"][idx]])
    assert len(d.train) + len(d.val) == np.isin(raw["y"], [7, 2, 5]).sum()


def test_k_shot_subset_never_subsamples_the_test_split(tmp_path):
    path, raw = _npz(tmp_path)
    d = _build(path, tmp_path, classes=[5, 6, 7, 8, 9], per_class=1)
    assert len(d.train) == 5 and len(d.val) == 0 and sorted(d.train.y) == [0, 1, 2, 3, 4]
    assert len(d.test) == np.isin(raw["y_test"], [5, 6, 7, 8, 9]).sum()


def test_held_out_test_split_is_the_same_examples_with_or_without_a_subset(ctx):
    """A data set without a test split: the subset's test split is the whole-set test split
    restricted to its classes (classes are selected after the hold-out)."""
    common = {"name": "sklearn_digits", **COMMON, "test_fraction": 0.2}
    whole = build_domain(common, SHAPE, ctx)
    sub = build_domain({**common, "classes": [3, 4]}, SHAPE, ctx)
    keep = np.isin(whole.test.y, [3, 4])
    np.testing.assert_array_equal(sub.test.x, whole.test.x[keep])
    np.testing.assert_array_equal(sub.test.y, whole.test.y[keep] - 3)


def test_per_class_all_is_every_example(tmp_path):
    path, _ = _npz(tmp_path)
    a, b = _build(path, tmp_path, per_class="all"), _build(path, tmp_path, per_class=None)
    np.testing.assert_array_equal(a.train.y, b.train.y)
    assert a.val_policy == b.val_policy


@pytest.mark.parametrize("classes,match", [([1, 1], "distinct"), ([3, 12], r"\[12\]"),
                                           ("5", "classes=.5.: must be a list"),
                                           ([4], "at least 2")])
def test_bad_subsets_are_user_errors(tmp_path, classes, match):
    path, _ = _npz(tmp_path)
    with pytest.raises(JtlError, match=match):
        _build(path, tmp_path, classes=classes)


def test_bad_per_class_is_a_user_error(tmp_path):
    path, _ = _npz(tmp_path)
    with pytest.raises(JtlError, match=r"per_class=.some.: must be an integer >= 1 or one of"):
        _build(path, tmp_path, per_class="some")
