"""Deep CORAL (Sun & Saenko 2016): align second-order statistics of backbone features.

    loss = CE(source) + weight * ||C_s - C_t||_F^2 / (4 d^2)

with unbiased feature covariances C (see `jtl.measures.coral`). Means are not aligned.
"""

from __future__ import annotations

import dataclasses

from jtl.measures.coral import coral_distance
from jtl.methods.base import METHODS
from jtl.methods.transductive import Transductive


@METHODS.register("coral")
@dataclasses.dataclass(frozen=True)
class CORAL(Transductive):
    def adaptation(self, model, out, key, progress):
        dist = coral_distance(out.f_s, out.f_t)
        return self.weight * dist, {"coral_loss": dist}
