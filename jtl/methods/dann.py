"""DANN (Ganin & Lempitsky 2015): domain-adversarial training through a gradient reversal layer.

    loss = CE(source) + weight * BCE(D(GRL_lambda([f_s; f_t])), [1; 0])

The discriminator D (`disc/`) descends weight * BCE; through the GRL the backbone receives
-lambda * weight * dBCE/df, i.e. it ascends the domain loss, making features domain-invariant.
lambda = 2 / (1 + exp(-gamma p)) - 1 over training progress p (`schedule: dann`).
"""

from __future__ import annotations

import dataclasses

from jtl.methods.adversarial import GradientReversal
from jtl.methods.base import METHODS


@METHODS.register("dann")
@dataclasses.dataclass(frozen=True)
class DANN(GradientReversal):
    def adaptation(self, model, out, key, progress):
        dom, metrics = self.adversarial(model, out.f_s, out.f_t, progress)
        return self.weight * dom, metrics
