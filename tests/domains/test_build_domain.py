"""`build_domain`: registry lookup, determinism, subsets and splits common to all loaders."""

from __future__ import annotations

import numpy as np
import pytest
from domain_testkit import COMMON

from jtl.domains.base import DOMAINS, Domain, LoadContext, build_domain
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
    a = _digits(ctx, shifts=shifts, per_class=5)
    b = _digits(ctx, shifts=shifts, per_class=5)
    assert _same(a, b)
    c = _digits(ctx, shifts=shifts, per_class=5, split_seed=1)
    assert not np.array_equal(a.val.y, c.val.y)


def test_mnist_per_class_subset(mnist: Domain, ctx: LoadContext) -> None:
    d = build_domain({"name": "mnist", **COMMON, "per_class": 10}, SHAPE, ctx)
    assert np.bincount(d.train.y, minlength=10).tolist() == [10] * 10
    # Only train is subset; the evaluation splits stay whole and equal to the full build's.
    assert np.array_equal(d.val.x, mnist.val.x) and np.array_equal(d.test.x, mnist.test.x)
    # The subset is drawn from the full train split.
    full = {x.tobytes() for x in mnist.train.x}
    assert all(x.tobytes() in full for x in d.train.x)


def test_max_train_and_empty_train(ctx: LoadContext) -> None:
    assert len(_digits(ctx, max_train=50).train) == 50
    with pytest.raises(JtlError, match="empty train split"):
        _digits(ctx, max_train=0)


def test_test_fraction_when_no_test_split(ctx: LoadContext) -> None:
    d = _digits(ctx)
    n = 1797
    assert len(d.test) == round(0.2 * n)
    assert len(d.train) + len(d.val) == n - len(d.test)
    assert d.train.x.shape[1:] == SHAPE and d.num_classes == 10
