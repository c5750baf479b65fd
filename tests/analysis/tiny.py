"""The tiny runs every analysis and notebook test reads, built once per test session.

`tests/analysis` and `tests/notebooks` each have a session fixture calling `study` with the
session's base temp dir; the cache makes the second call free (and a completed run is never
retrained anyway). The runs are `jtl.analysis.examples`', the ones the notebooks create
for themselves when given no run dir.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

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
