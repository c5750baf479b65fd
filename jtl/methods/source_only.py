"""Source only: supervised on labeled source, evaluated on target. The no-adaptation baseline."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jtl.methods.base import METHODS, Method, accuracy, cross_entropy


@METHODS.register("source_only")
@dataclasses.dataclass(frozen=True)
class SourceOnly(Method):
    uses = frozenset({"source/x", "source/y"})
    labeled: ClassVar[str] = "source"  # which domain's labeled batch the loss reads

    def loss(self, model, batch, key, progress):
        data = batch[self.labeled]
        logits = model.head(model.features(data["x"]))
        ce = cross_entropy(logits, data["y"])
        return ce, {"cls_loss": ce, "train_acc": accuracy(logits, data["y"])}
