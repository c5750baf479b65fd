"""Fixtures for the domain tests: the offline data folder and one shared TFDS cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from domain_testkit import COMMON, DATA_DIR

from jtl.domains.base import Domain, LoadContext, build_domain


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "README.md").is_file():
        pytest.fail(f"offline data not found at {DATA_DIR}: a checkout needs shared/data "
                    f"beside the repository")
    return DATA_DIR


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared offline builders, shared by the whole session and kept out of the repo."""
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def ctx(data_dir: Path, tfds_dir: Path) -> LoadContext:
    return LoadContext(data_dir=data_dir, tfds_dir=tfds_dir)


@pytest.fixture(scope="session")
def mnist(ctx: LoadContext) -> Domain:
    return build_domain({"name": "mnist", **COMMON}, (28, 28, 1), ctx)


@pytest.fixture(scope="session")
def usps(ctx: LoadContext) -> Domain:
    return build_domain({"name": "usps", **COMMON}, (28, 28, 1), ctx)
