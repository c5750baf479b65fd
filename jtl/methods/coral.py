"""Deep CORAL (Sun & Saenko 2016): align the second-order statistics of a layer's outputs.

    loss = CE(source) + weight * ||C_s - C_t||_F^2 / (4 d^2)

with unbiased covariances C of the chosen layer's outputs (`jtl.discrepancy.coral_distance`);
means are not aligned. `layer: logits` (the default) is the paper's choice: the loss sits on
the last, classifier layer (fc8, d = number of classes), where 1 / (4 d^2) is 1/400 for ten
digits. On the 500-d LeNet features (`layer: features`) it is 1e-6 and the term vanishes at
weight 1. The paper sets weight "such that at the end of training the classification loss
and the CORAL loss are roughly the same"; jtl's default is 1, fixed a priori (check the
logged `cls_loss` against `weight * coral_loss` to see where a run ends up).
"""

from __future__ import annotations

import dataclasses

from jtl.discrepancy import coral_distance
from jtl.errors import JtlError
from jtl.methods.base import METHODS
from jtl.methods.transductive import Transductive

LAYERS = ("logits", "features")


@METHODS.register("coral")
@dataclasses.dataclass(frozen=True)
class CORAL(Transductive):
    layer: str = "logits"

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise JtlError(f"method.layer must be one of {LAYERS}, got '{self.layer}'")

    def aligns(self) -> str | None:
        return None if self.layer == "logits" else "features"

    def adaptation(self, model, out, key, progress):
        if self.layer == "logits":
            dist = coral_distance(out.logits_s, out.logits_t)
        else:
            dist = coral_distance(out.f_s, out.f_t)
        return self.weight * dist, {"coral_loss": dist}
