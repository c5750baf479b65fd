"""Entropy minimisation (Grandvalet & Bengio 2005) on unlabeled target data.

    loss = CE(source) + weight * mean_t H(softmax(g(f(x_t))))

Pushes the decision boundary away from dense target regions (cluster assumption). Alone it can
lock in confident mistakes, so `weight` is usually small.
"""

from __future__ import annotations

import dataclasses

from jtl.methods.base import METHODS
from jtl.methods.transductive import Transductive, entropy


@METHODS.register("entropy_min")
@dataclasses.dataclass(frozen=True)
class EntropyMin(Transductive):
    weight: float = 0.1

    def adaptation(self, model, out, key, progress):
        ent = entropy(out.logits_t).mean()
        return self.weight * ent, {"target_entropy": ent}
