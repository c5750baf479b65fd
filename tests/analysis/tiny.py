"""The tiny runs every analysis and notebook test reads, built once per test session.

`tests/analysis` and `tests/notebooks` each have a session fixture calling `shared_study`:
under pytest-xdist every worker has its own base temp dir, so the runs go to the directory
above them (shared by the session's workers) and the first worker builds them while the
others wait on a file lock; the cache makes a second call in a worker free (and a completed
run is never retrained anyway). The runs are `jtl.analysis.examples`', the ones the notebooks create
for themselves when given no run dir.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import os
from pathlib import Path

import pytest

from jtl.analysis import examples


@dataclasses.dataclass(frozen=True)
class Study:
    root: Path
    source: Path  # source_only
    adapted: Path  # dann
    grid: Path  # finetune/pc<K>/seed<S> and baselines/pc<K>/seed<S>
    freeze: Path  # source fine-tuned with backbone/blocks/0 frozen


@functools.cache
def study(base: Path) -> Study:
    root = base / "jtl-tiny"
    return Study(root, examples.tiny_source(root), examples.tiny_adapted(root),
                 examples.tiny_grid(root), examples.tiny_freeze(root))


def shared_study(factory: pytest.TempPathFactory) -> Study:
    """`study` once per test session, not once per xdist worker (~40 s of CPU each)."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    with open(base / "jtl-tiny.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return study(base)
