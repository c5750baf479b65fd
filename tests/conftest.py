"""Shared fixtures: configs composed from conf/ exactly as the CLI composes them."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
# The tests' compiled programs go to a cache of their own, never the user's ~/.cache/jtl/xla;
# set before any test runs, so subprocesses (CLI tests, notebooks) inherit it.
if "JTL_COMPILE_CACHE" not in os.environ:
    os.environ["JTL_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="jtl-test-xla-")
    atexit.register(shutil.rmtree, os.environ["JTL_COMPILE_CACHE"], ignore_errors=True)
CONF = ROOT / "conf"
# Fast offline domain pair for trainer tests: scikit-learn's digits as source and target.
FAST = [
    "domain@source=sklearn_digits",
    "domain@target=sklearn_digits",
    "model=mlp",
    "model.hidden=[64]",
    "trainer=debug",
    "trainer.progress=false",
    "trainer.tensorboard=false",
]


def compose_cfg(overrides: list[str], hydra: bool = False) -> DictConfig:
    """The composed config; `hydra=True` keeps the `hydra` node (sweeper, launcher)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=hydra)


@pytest.fixture
def fast_cfg():
    """`fast_cfg(*overrides)` -> a small, quick config on offline digits."""
    return lambda *overrides: compose_cfg([*FAST, *overrides])


def interrupt_once(monkeypatch, at: int) -> None:
    """Ctrl-C once when training reaches step `at`, raised in the main thread (the trainer's
    fault hook replaced; a real SIGINT was once not delivered inside the full suite)."""
    fired: list[int] = []

    def interrupt(step, where="step", managers=()):
        if where == "step" and step >= at and not fired:
            fired.append(step)
            raise KeyboardInterrupt

    monkeypatch.setattr("jtl.train.loop.inject_fault", interrupt)
