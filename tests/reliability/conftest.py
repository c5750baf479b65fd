"""One uninterrupted reference run that every fault test compares against."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import compose_cfg
from tests.reliability.kit import ARGS


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from jtl.train import train_and_evaluate

    run_dir = tmp_path_factory.mktemp("reference") / "run"
    train_and_evaluate(compose_cfg(ARGS), run_dir)
    return run_dir
