"""Checksum gate, caching and concurrent preparation of the offline TFDS builders."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from domain_testkit import COMMON

from jtl.domains import _builders, mnist, usps
from jtl.domains.base import DOMAINS, LoadContext, build_domain
from jtl.errors import JtlError


def _copy_data(data_dir: Path, dst: Path) -> Path:
    shutil.copytree(data_dir, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)  # the shared copy is read-only
    return dst


def test_readme_sums_match_loader_constants(data_dir: Path) -> None:
    readme = (data_dir / "README.md").read_text()
    for rel, sha in {**mnist.FILES, **usps.FILES}.items():
        assert rel in readme and sha in readme


@pytest.mark.parametrize("name,rel", [("mnist", "mnist/t10k-labels-idx1-ubyte.gz"),
                                      ("usps", "usps/usps.npz")])
def test_corrupt_file_is_refused(name: str, rel: str, data_dir: Path, tmp_path: Path) -> None:
    copy = _copy_data(data_dir, tmp_path / "data")
    blob = bytearray((copy / rel).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (copy / rel).write_bytes(bytes(blob))
    with pytest.raises(JtlError) as e:
        DOMAINS.get(name)({"backend": "offline"}, LoadContext(copy, tmp_path / "tfds"))
    expected = {**mnist.FILES, **usps.FILES}[rel]
    msg = str(e.value)
    assert "corrupt" in msg and rel in msg and expected in msg and "paths.data_dir" in msg
    assert not (tmp_path / "tfds").exists() or not any((tmp_path / "tfds").iterdir())


@pytest.mark.parametrize("name", ["mnist", "usps"])
def test_missing_file_says_what_to_do(name: str, tmp_path: Path) -> None:
    with pytest.raises(JtlError) as e:
        DOMAINS.get(name)({"backend": "offline"},
                          LoadContext(tmp_path / "nowhere", tmp_path / "tfds"))
    msg = str(e.value)
    assert "missing" in msg and f"{name}/" in msg and "paths.data_dir" in msg
    # The online alternative, where TFDS has one (its catalog has no USPS).
    assert ("backend=tfds" in msg) == (name == "mnist")


def test_corrupt_prepared_copy_says_what_to_delete(ctx: LoadContext, tmp_path: Path,
                                                   fake_mnist_sums: None) -> None:
    """A truncated array_record file in the cache: one line naming the folder to delete."""
    local = LoadContext(ctx.data_dir, tmp_path)
    DOMAINS.get("mnist")({"backend": "offline"}, local)
    folder = tmp_path / "jtl_mnist_offline" / str(_builders.JtlMnistOffline.VERSION)
    (record,) = folder.glob("*train.array_record*")
    record.write_bytes(record.read_bytes()[: record.stat().st_size // 2])
    with pytest.raises(JtlError) as e:
        build_domain({"name": "mnist", **COMMON}, (28, 28, 1), local, role="source")
    msg = str(e.value)
    assert msg.startswith("source domain 'mnist': the prepared data under") and "\n" not in msg
    assert f"delete {folder} and run again" in msg
    shutil.rmtree(folder)  # the advice works
    assert len(build_domain({"name": "mnist", **COMMON}, (28, 28, 1), local).test) > 0


_PREPARE = """
import sys
import numpy as np
import tensorflow_datasets as tfds
from jtl.domains import _builders, _offline

class JtlTinyOffline(_builders._OfflineBuilder):
    VERSION = tfds.core.Version("1.0.0")
    image_shape = (2, 2, 1)
    image_dtype = np.uint8

    def _split_generators(self, dl_manager):
        print("PREPARING", flush=True)
        x, y = np.arange(40, dtype=np.uint8).reshape(10, 2, 2), np.arange(10) % 10
        return {"train": self._generate_examples(x, y, np.arange(10))}

b = _offline.prepare_cached(JtlTinyOffline, sys.argv[1], sys.argv[1])
x, y = _offline.read_split(b.as_data_source()["train"], batched=True)
print("LOADED", x.shape, int(x.sum()))
"""


def test_concurrent_preparation_is_safe(tmp_path: Path) -> None:
    """Two processes on one empty cache: one prepares, both read the whole data set."""
    procs = [subprocess.Popen([sys.executable, "-c", _PREPARE, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert "LOADED (10, 2, 2, 1) 780" in out
    assert sum(out.count("PREPARING") for out, _ in outs) == 1
    assert [p.name for p in (tmp_path / "jtl_tiny_offline").iterdir()] == ["1.0.0"]
