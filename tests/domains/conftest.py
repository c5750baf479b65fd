"""Fixtures for the domain tests: offline data folders and one shared TFDS cache.

`ctx` points at a fake data folder: small MNIST-format files (preparing the real 60,000 images
takes seconds; only tests marked slow do) beside the real USPS file (a symlink). Loading the
fake MNIST needs the `fake_mnist_sums` fixture, which makes the checksum gate expect its files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from domain_testkit import COMMON, DATA_DIR, fake_mnist

from jtl.domains import mnist as mnist_module
from jtl.domains._offline import sha256_of
from jtl.domains.base import Domain, LoadContext, build_domain


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "README.md").is_file():
        pytest.fail(f"offline data not found at {DATA_DIR}: a checkout needs shared/data "
                    f"beside the repository")
    return DATA_DIR


@pytest.fixture(scope="session")
def fake_data(data_dir: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(folder, arrays): fake mnist/ files and the real usps/ beside them."""
    folder = tmp_path_factory.mktemp("data")
    arrays = fake_mnist(folder)
    (folder / "usps").symlink_to(data_dir / "usps")
    return folder, arrays


@pytest.fixture(scope="session")
def fake_sums(fake_data: tuple[Path, dict]) -> dict[str, str]:
    return {rel: sha256_of(fake_data[0] / rel) for rel in mnist_module.FILES}


@pytest.fixture()
def fake_mnist_sums(fake_sums: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist_module, "FILES", fake_sums)


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared offline builders, shared by the whole session and kept out of the repo."""
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def ctx(fake_data: tuple[Path, dict], tfds_dir: Path) -> LoadContext:
    return LoadContext(data_dir=fake_data[0], tfds_dir=tfds_dir)


@pytest.fixture(scope="session")
def mnist(ctx: LoadContext, fake_sums: dict[str, str]) -> Domain:
    with pytest.MonkeyPatch.context() as mp:  # patched only while building
        mp.setattr(mnist_module, "FILES", fake_sums)
        return build_domain({"name": "mnist", "backend": "offline", **COMMON}, (28, 28, 1),
                            ctx)


@pytest.fixture(scope="session")
def usps(ctx: LoadContext) -> Domain:
    return build_domain({"name": "usps", **COMMON}, (28, 28, 1), ctx)
