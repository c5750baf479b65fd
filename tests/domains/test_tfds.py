"""The TFDS catalog loader, run against `tfds.testing.mock_data` (no download, no TF).

`MockPolicy.USE_CODE`: the pip package ships no catalog metadata, so split names are unknown
to the mock and must be asked for by name (the loader always does). The mock yields the same
random examples for every split.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds
from domain_testkit import COMMON

from jtl.domains.base import COMMON_KEYS, DOMAINS, LoadContext, build_domain
from jtl.errors import JtlError

N = 40


@pytest.fixture()
def mocked():
    with tfds.testing.mock_data(num_examples=N, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def _cfg(**over: object) -> dict:
    return {"name": "tfds", "dataset": "mnist", "train_split": "train", "test_split": "test",
            "image_key": "image", "label_key": "label", "tfds_data_dir": None, **COMMON,
            "test_fraction": 0.25, **over}


def test_loads_train_and_test(mocked: None, ctx: LoadContext) -> None:
    raw = DOMAINS.get("tfds")({k: v for k, v in _cfg().items() if k not in COMMON_KEYS}, ctx)
    assert raw.x_train.shape == (N, 28, 28, 1) and raw.x_train.dtype == np.uint8
    assert raw.x_test.shape == (N, 28, 28, 1)
    assert raw.num_classes == 10 and raw.max_value == 255.0
    assert raw.y_train.min() >= 0 and raw.y_train.max() < 10


def test_build_domain_with_and_without_test_split(mocked: None, ctx: LoadContext) -> None:
    d = build_domain(_cfg(), (32, 32, 3), ctx)
    assert (len(d.train), len(d.val), len(d.test)) == (36, 4, N)
    assert d.train.x.shape[1:] == (32, 32, 3) and d.num_classes == 10
    d = build_domain(_cfg(test_split=None), (28, 28, 1), ctx)
    assert len(d.test) == N // 4 and len(d.train) + len(d.val) == N - N // 4


def test_errors(mocked: None, ctx: LoadContext) -> None:
    with pytest.raises(JtlError, match="no data set 'not_a_dataset'"):
        build_domain(_cfg(dataset="not_a_dataset"), (28, 28, 1), ctx)
    with pytest.raises(JtlError, match="no key 'img'"):
        build_domain(_cfg(image_key="img"), (28, 28, 1), ctx)
    with pytest.raises(JtlError, match="needs `dataset`"):
        build_domain(_cfg(dataset=None), (28, 28, 1), ctx)
