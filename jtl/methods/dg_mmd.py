"""MMD across training environments, as DomainBed's `MMD` (Li et al. 2018's MMD-AAE without
the adversarial autoencoder, as DomainBed writes it): the biased Gaussian-kernel MMD^2 of the
features of every pair of environments, at DomainBed's seven fixed bandwidths
gamma in {1e-3, ..., 1e3} (k = sum_g exp(-g ||a - b||^2), `jtl.discrepancy.gaussian_mmd`),

    loss = mean_e CE_e + weight * mean_{e<e'} MMD^2(features_e, features_e')

weight 1 = DomainBed's mmd_gamma default. Distinct from `mmd` (DAN: transductive, unbiased,
bandwidths around the data's mean distance): this one never reads the target.
"""

from __future__ import annotations

import dataclasses

from jtl.discrepancy import gaussian_mmd
from jtl.methods.base import METHODS
from jtl.methods.multidomain import PairwiseFeaturePenalty


@METHODS.register("dg_mmd")
@dataclasses.dataclass(frozen=True)
class DGMMD(PairwiseFeaturePenalty):
    method_name = "dg_mmd"

    def distance(self, x, y):
        return gaussian_mmd(x, y)
