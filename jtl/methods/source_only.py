"""Source only: supervised on labeled source, evaluated on target. The no-adaptation baseline.

`label_smoothing` eps trains against (1 - eps) one-hot + eps / K (Szegedy et al. 2016), the
source recipe of SHOT (eps = 0.1); null (the default) is the plain cross-entropy, so runs
made before the option existed keep their identity.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import optax

from jtl.errors import JtlError
from jtl.methods.base import METHODS, Method, accuracy, cross_entropy


@METHODS.register("source_only")
@dataclasses.dataclass(frozen=True)
class SourceOnly(Method):
    uses = frozenset({"source/x", "source/y"})
    labeled: ClassVar[str] = "source"  # which domain's labeled batch the loss reads
    label_smoothing: float | None = None

    def __post_init__(self) -> None:
        eps = self.label_smoothing
        if eps is not None and not 0.0 <= eps < 1.0:
            raise JtlError(f"method.label_smoothing must be in [0, 1) or null, got {eps}")

    def loss(self, model, batch, key, progress):
        data = batch[self.labeled]
        logits = model.head(model.features(data["x"]))
        ce = cross_entropy(logits, data["y"])
        loss = ce
        if self.label_smoothing:
            targets = optax.smooth_labels(jax.nn.one_hot(data["y"], logits.shape[-1]),
                                          self.label_smoothing)
            loss = optax.softmax_cross_entropy(logits, targets).mean()
        return loss, {"cls_loss": ce, "train_acc": accuracy(logits, data["y"])}
