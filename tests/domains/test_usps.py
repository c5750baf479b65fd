"""Offline USPS: the published split, in its stored order, resized for the model."""

from __future__ import annotations

import numpy as np
import pytest

from jtl.domains import _builders
from jtl.domains.base import DOMAINS, Domain, LoadContext


def test_raw_arrays_match_the_npz_and_are_cached(ctx: LoadContext,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    DOMAINS.get("usps")({}, ctx)  # prepares, unless an earlier test did

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("prepared again")

    monkeypatch.setattr(_builders.JtlUspsOffline, "_split_generators", fail)
    raw = DOMAINS.get("usps")({}, ctx)
    assert (ctx.tfds_dir / "jtl_usps_offline" / str(_builders.JtlUspsOffline.VERSION)).is_dir()
    with np.load(ctx.data_dir / "usps/usps.npz") as d:
        assert (raw.x_train[..., 0] == d["x_train"]).all()
        assert (raw.y_train == d["y_train"]).all()
        assert (raw.x_test[..., 0] == d["x_test"]).all()
        assert (raw.y_test == d["y_test"]).all()
    assert raw.x_train.dtype == np.float32 and raw.value_range == (0.0, 1.0)
    assert raw.num_classes == 10


def test_built_domain(usps: Domain) -> None:
    assert (len(usps.train), len(usps.val), len(usps.test)) == (6562, 729, 2007)
    for s in (usps.train, usps.val, usps.test):
        assert s.x.shape[1:] == (28, 28, 1) and s.x.dtype == np.float32
        assert s.x.min() >= 0.0 and s.x.max() <= 1.0 and s.x.max() > 0.9
        assert s.y.dtype == np.int32 and set(np.unique(s.y)) == set(range(10))
    assert usps.num_classes == 10
