"""Target only: supervised on the labeled target train split; the negative-transfer baseline."""

from __future__ import annotations

import dataclasses

from jtl.methods.base import METHODS
from jtl.methods.source_only import SourceOnly


@METHODS.register("target_only")
@dataclasses.dataclass(frozen=True)
class TargetOnly(SourceOnly):
    uses = frozenset({"target/x", "target/y"})
    labeled = "target"
