"""MNIST: the official split (here on small fake IDX files), its cache version, its backends.

The real 60,000 / 10,000 files are read only by the test marked slow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from domain_testkit import COMMON, FAKE_MNIST

from jtl.domains import _builders, _offline
from jtl.domains import mnist as mnist_module
from jtl.domains import tfds as tfds_module
from jtl.domains.base import DOMAINS, VAL_FROM_TRAIN, Domain, LoadContext, build_domain
from jtl.errors import JtlError


def test_raw_arrays_match_the_idx_files(ctx: LoadContext, fake_data: tuple[Path, dict],
                                        fake_mnist_sums: None) -> None:
    raw = DOMAINS.get("mnist")({"backend": "offline"}, ctx)
    arrays = fake_data[1]
    for (x, y), stem in (((raw.x_train, raw.y_train), "train"), ((raw.x_test, raw.y_test), "t10k")):
        assert x.dtype == np.uint8 and x.shape == (FAKE_MNIST[stem], 28, 28, 1)
        assert (x[..., 0] == arrays[stem][0]).all() and (y == arrays[stem][1]).all()
    assert raw.num_classes == 10 and raw.value_range is None  # uint8: [0, 255]


def test_built_domain(mnist: Domain) -> None:
    n_val = round(0.1 * FAKE_MNIST["train"])
    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (
        FAKE_MNIST["train"] - n_val, n_val, FAKE_MNIST["t10k"])
    for s in (mnist.train, mnist.val, mnist.test):
        assert s.x.shape[1:] == (28, 28, 1) and s.x.dtype == np.float32
        assert s.y.dtype == np.int32 and set(np.unique(s.y)) <= set(range(10))
    assert set(np.unique(mnist.train.y)) == set(np.unique(mnist.test.y)) == set(range(10))
    assert mnist.train.x.min() == 0.0 and mnist.train.x.max() == 1.0
    assert mnist.num_classes == 10 and mnist.val_policy == VAL_FROM_TRAIN


def test_a_cache_of_the_old_split_is_never_reused(ctx: LoadContext, tmp_path: Path,
                                                  fake_mnist_sums: None) -> None:
    """A tfds_dir holding version 1.0.0 (the 8000/2000 split of t10k) is left alone."""

    class Old(_builders.JtlMnistOffline, skip_registration=True):
        name = "jtl_mnist_offline"
        VERSION = tfds.core.Version("1.0.0")

        def _split_generators(self, dl_manager: object) -> dict:
            x, y = np.zeros((10, 28, 28), np.uint8), np.arange(10) % 10
            return {"train": self._generate_examples(x[:8], y[:8], np.arange(8)),
                    "test": self._generate_examples(x[8:], y[8:], np.arange(8, 10))}

    _offline.prepare_cached(Old, tmp_path, tmp_path)
    assert (tmp_path / "jtl_mnist_offline/1.0.0").is_dir()
    raw = DOMAINS.get("mnist")({"backend": "offline"}, LoadContext(ctx.data_dir, tmp_path))
    assert (len(raw.y_train), len(raw.y_test)) == (FAKE_MNIST["train"], FAKE_MNIST["t10k"])
    assert "2.0.0" in _builders.JtlMnistOffline.RELEASE_NOTES


def test_backend_choice(ctx: LoadContext, tmp_path: Path) -> None:
    assert mnist_module.backend({}, ctx.data_dir) == "offline"
    assert mnist_module.backend({"backend": "auto"}, tmp_path) == "tfds"  # no files there
    assert mnist_module.backend({"backend": "tfds"}, ctx.data_dir) == "tfds"
    # One file present is enough for offline: the rest are then reported missing.
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist/t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    assert mnist_module.backend({"backend": "auto"}, tmp_path) == "offline"
    with pytest.raises(JtlError, match="unknown backend 'web'"):
        mnist_module.backend({"backend": "web"}, tmp_path)


def test_same_config_through_tfds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the offline files, `mnist` is TFDS's catalog mnist, split the same way."""
    monkeypatch.setattr(tfds_module, "internet_reachable", lambda *a, **k: True)
    with tfds.testing.mock_data(num_examples=50, policy=tfds.testing.MockPolicy.USE_CODE):
        d = build_domain({"name": "mnist", "backend": "auto", **COMMON}, (28, 28, 1),
                         LoadContext(tmp_path / "no_data", tmp_path / "tfds"))
    assert (len(d.train), len(d.val), len(d.test)) == (45, 5, 50) and d.num_classes == 10
    assert d.train.x.dtype == np.float32 and 0.0 <= d.train.x.min() <= d.train.x.max() <= 1.0


def test_offline_without_files_fails_fast(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tfds_module, "internet_reachable", lambda *a, **k: False)
    with pytest.raises(JtlError) as e:
        build_domain({"name": "mnist", **COMMON}, (28, 28, 1),
                     LoadContext(tmp_path / "no_data", tmp_path / "tfds"), role="source")
    msg = str(e.value)
    assert msg.startswith("source domain 'mnist': no offline MNIST files under")
    assert "offline" in msg and "paths.data_dir" in msg and "\n" not in msg


@pytest.mark.slow
def test_real_official_split(data_dir: Path, tmp_path: Path) -> None:
    """The real files: 60,000 train (54,000 + 6,000 val) / 10,000 test, per-class counts as
    ../shared/data/README.md states them."""
    ctx = LoadContext(data_dir, tmp_path)
    raw = DOMAINS.get("mnist")({"backend": "offline"}, ctx)
    x, y = _builders.read_idx(data_dir / "mnist/train-images-idx3-ubyte.gz", 3), \
        _builders.read_idx(data_dir / "mnist/train-labels-idx1-ubyte.gz", 1)
    assert (raw.x_train[..., 0] == x).all() and (raw.y_train == y).all()
    assert np.bincount(raw.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                 6265, 5851, 5949]
    assert len(raw.y_test) == 10_000
    d = build_domain({"name": "mnist", **COMMON}, (28, 28, 1), ctx)
    assert (len(d.train), len(d.val), len(d.test)) == (54_000, 6_000, 10_000)
