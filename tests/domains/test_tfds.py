"""The TFDS catalog loader, run against `tfds.testing.mock_data` (no download, no TF), a tiny
builder registered here (a real prepared cache), and a simulated offline machine.

`MockPolicy.USE_CODE`: the pip package ships no catalog metadata, so split names are unknown
to the mock and must be asked for by name (the loader always does). The mock yields the same
random examples for every split.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow_datasets as tfds
from domain_testkit import COMMON

from jtl.domains import _builders, _offline
from jtl.domains import tfds as tfds_module
from jtl.domains.base import COMMON_KEYS, DOMAINS, LoadContext, build_domain
from jtl.errors import JtlError

N = 40


class JtlTestTinyCatalog(_builders._OfflineBuilder):
    """Registered under its snake-case name, so `dataset=jtl_test_tiny_catalog` finds it."""

    VERSION = tfds.core.Version("1.0.0")
    image_shape = (28, 28, 1)
    image_dtype = np.uint8

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        x = (np.arange(200 * 784) % 251).astype(np.uint8).reshape(200, 28, 28)
        y = np.arange(200) % 10
        return {"train": self._generate_examples(x[:150], y[:150], np.arange(150)),
                "test": self._generate_examples(x[150:], y[150:], np.arange(150, 200))}


@pytest.fixture()
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tfds_module, "internet_reachable", lambda *a, **k: True)


@pytest.fixture()
def mocked(online: None):
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
    assert raw.num_classes == 10 and raw.value_range is None  # uint8: [0, 255]
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


def test_offline_fails_in_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not prepared and no connection: one line at once, not TFDS's minutes of retries."""
    monkeypatch.setattr(tfds_module, "internet_reachable", lambda *a, **k: False)
    start = time.monotonic()
    with pytest.raises(JtlError) as e:
        build_domain(_cfg(dataset="fashion_mnist", tfds_data_dir=str(tmp_path)), (28, 28, 1),
                     LoadContext(tmp_path, tmp_path), role="target")
    assert time.monotonic() - start < 20
    msg = str(e.value)
    assert msg.startswith("target domain 'tfds': this machine is offline") and "\n" not in msg
    assert "fashion_mnist" in msg and "npz" in msg and "offline domain" in msg


def test_internet_check_is_a_quick_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert tfds_module.internet_reachable(("127.0.0.1", port), timeout=2.0)
    assert not tfds_module.internet_reachable(("127.0.0.1", port), timeout=2.0)  # closed


def test_prepared_catalog_cache_and_its_corruption(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A prepared copy is read without any network; a truncated one says what to delete."""
    monkeypatch.setattr(tfds_module, "internet_reachable", lambda *a, **k: False)
    _offline.prepare_cached(JtlTestTinyCatalog, tmp_path, tmp_path)
    cfg = _cfg(dataset="jtl_test_tiny_catalog", tfds_data_dir=str(tmp_path))
    d = build_domain(cfg, (28, 28, 1), LoadContext(tmp_path, tmp_path))
    assert (len(d.train) + len(d.val), len(d.test)) == (150, 50)

    folder = tmp_path / "jtl_test_tiny_catalog/1.0.0"
    (record,) = folder.glob("*train.array_record*")
    record.write_bytes(record.read_bytes()[: record.stat().st_size // 2])
    with pytest.raises(JtlError) as e:
        build_domain(cfg, (28, 28, 1), LoadContext(tmp_path, tmp_path), role="source")
    msg = str(e.value)
    assert msg.startswith("source domain 'tfds': the prepared data under") and "\n" not in msg
    assert f"delete {folder} and run again" in msg
