"""`build_domain`: registry lookup, determinism, subsets and splits common to all loaders."""

from __future__ import annotations

import numpy as np
import pytest
from domain_testkit import COMMON

from jtl.domains.base import (
    DOMAINS,
    VAL_FROM_BUDGET,
    VAL_FROM_TRAIN,
    VAL_NONE,
    Domain,
    LoadContext,
    build_domain,
)
from jtl.errors import JtlError

SHAPE = (28, 28, 1)


def _digits(ctx: LoadContext, **over: object) -> Domain:
    return build_domain({"name": "sklearn_digits", **COMMON, "test_fraction": 0.2, **over},
                        SHAPE, ctx)


def _same(a: Domain, b: Domain) -> bool:
    return all(np.array_equal(getattr(a, s).x, getattr(b, s).x)
               and np.array_equal(getattr(a, s).y, getattr(b, s).y)
               for s in ("train", "val", "test"))


def test_unknown_domain_lists_known_ones(ctx: LoadContext) -> None:
    with pytest.raises(JtlError) as e:
        build_domain({"name": "mnsit", **COMMON}, SHAPE, ctx)
    assert "mnsit" in str(e.value)
    for known in ("mnist", "usps", "sklearn_digits", "tfds", "npz"):
        assert known in str(e.value)


def test_all_loaders_are_registered() -> None:
    assert {"mnist", "usps", "sklearn_digits", "tfds", "npz"} <= set(DOMAINS.names())


def test_builds_are_deterministic(ctx: LoadContext) -> None:
    shifts = [{"name": "rotate", "degrees": 20, "random": True}, {"name": "noise", "std": 0.1}]
    a = _digits(ctx, shifts=shifts, per_class=20)
    b = _digits(ctx, shifts=shifts, per_class=20)
    assert _same(a, b)
    c = _digits(ctx, shifts=shifts, per_class=20, split_seed=1)
    assert not np.array_equal(a.val.x, c.val.x)


def _rows(*splits: object) -> set[bytes]:
    return {x.tobytes() for s in splits for x in s.x}  # type: ignore[attr-defined]


def test_per_class_budget_holds_train_and_val(mnist: Domain, ctx: LoadContext,
                                              fake_mnist_sums: None) -> None:
    """per_class=k: k labeled examples per class in all; val is carved out of them."""
    d = build_domain({"name": "mnist", **COMMON, "per_class": 10}, SHAPE, ctx)
    assert np.bincount(d.train.y, minlength=10).tolist() == [9] * 10
    assert np.bincount(d.val.y, minlength=10).tolist() == [1] * 10
    assert d.val_policy == VAL_FROM_BUDGET and mnist.val_policy == VAL_FROM_TRAIN
    assert not _rows(d.train) & _rows(d.val)
    # Drawn from the labeled data (train + val of the full build), never from test, which
    # stays whole.
    assert _rows(d.train, d.val) <= _rows(mnist.train, mnist.val)
    assert np.array_equal(d.test.x, mnist.test.x)


@pytest.mark.parametrize("k", [1, 3, 12])
def test_few_shot_val_comes_only_from_the_budget(ctx: LoadContext, k: int) -> None:
    """A 1-shot domain has no val (0.1 * 1 rounds down); never more than k labels a class."""
    d = _digits(ctx, per_class=k)
    train, val = (np.bincount(s.y, minlength=10) for s in (d.train, d.val))
    assert (val <= 1).all() and ((train + val) == k).all()
    assert (val == int(0.1 * k)).all()  # val_fraction 0.1 of k, rounded down
    assert d.val_policy == (VAL_NONE if k < 10 else VAL_FROM_BUDGET)


def test_no_validation_split(ctx: LoadContext) -> None:
    d = _digits(ctx, val_fraction=0.0)
    assert len(d.val) == 0 and d.val.x.shape[1:] == SHAPE and d.val_policy == VAL_NONE
    assert len(d.train) == 1797 - round(0.2 * 1797)
    for bad, match in [({"val_fraction": 1.0}, "val_fraction"), ({"per_class": 0}, "per_class")]:
        with pytest.raises(JtlError, match=match):
            _digits(ctx, **bad)


def test_max_train_and_empty_train(ctx: LoadContext) -> None:
    assert len(_digits(ctx, max_train=50).train) == 50
    with pytest.raises(JtlError, match=r"max_train=0: must be an integer >= 1"):  # the schema
        _digits(ctx, max_train=0)


def test_test_fraction_when_no_test_split(ctx: LoadContext) -> None:
    d = _digits(ctx)
    n = 1797
    assert len(d.test) == round(0.2 * n)
    assert len(d.train) + len(d.val) == n - len(d.test)
    assert d.train.x.shape[1:] == SHAPE and d.num_classes == 10
