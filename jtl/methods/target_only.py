"""Target only: supervised on the labeled target train split; the negative-transfer baseline."""

from __future__ import annotations

import dataclasses

from jtl.methods.base import METHODS, Method, accuracy, cross_entropy


@METHODS.register("target_only")
@dataclasses.dataclass(frozen=True)
class TargetOnly(Method):
    uses = frozenset({"target/x", "target/y"})

    def loss(self, model, batch, key, progress):
        logits = model.head(model.backbone(batch["target"]["x"]))
        ce = cross_entropy(logits, batch["target"]["y"])
        return ce, {"cls_loss": ce, "train_acc": accuracy(logits, batch["target"]["y"])}
