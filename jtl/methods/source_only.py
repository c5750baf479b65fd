"""Source only: supervised on labeled source, evaluated on target. The no-adaptation baseline."""

from __future__ import annotations

import dataclasses

from jtl.methods.base import METHODS, Method, accuracy, cross_entropy


@METHODS.register("source_only")
@dataclasses.dataclass(frozen=True)
class SourceOnly(Method):
    uses = frozenset({"source/x", "source/y"})

    def loss(self, model, batch, key, progress):
        logits = model.head(model.backbone(batch["source"]["x"]))
        ce = cross_entropy(logits, batch["source"]["y"])
        return ce, {"cls_loss": ce, "train_acc": accuracy(logits, batch["source"]["y"])}
