"""Multitask learning: one shared backbone, one head per task, trained jointly on labeled source
and labeled target (Caruana 1997). `head` scores the target (the task every run is evaluated
on, so single-task parameter paths stay `head/...`); `source_head` scores the source, whose
classes may differ in count or meaning.

    loss = CE(head(f(x_t)), y_t) + weight * CE(source_head(f(x_s)), y_s)
"""

from __future__ import annotations

import dataclasses

from flax import nnx

from jtl.methods.base import METHODS, Method, accuracy, cross_entropy


@METHODS.register("multitask")
@dataclasses.dataclass(frozen=True)
class Multitask(Method):
    weight: float = 1.0  # the source task's weight
    # Classes of the source head; 0: the source domain's count (the trainer fills it in).
    source_classes: int = 0
    uses = frozenset({"source/x", "source/y", "target/x", "target/y"})

    def modules(self, feature_dim, num_classes, rngs):
        return {"source_head": nnx.Linear(feature_dim, self.source_classes or num_classes,
                                          rngs=rngs)}

    def loss(self, model, batch, key, progress):
        src, tgt = batch["source"], batch["target"]
        logits_t = model.head(model.features(tgt["x"]))
        logits_s = model.source_head(model.features(src["x"]))
        ce_t, ce_s = cross_entropy(logits_t, tgt["y"]), cross_entropy(logits_s, src["y"])
        return ce_t + self.weight * ce_s, {"cls_loss": ce_t, "source_loss": ce_s,
                                           "train_acc": accuracy(logits_t, tgt["y"])}
