"""CORAL across training environments, as DomainBed's `CORAL` (Sun & Saenko 2016 for domain
generalization): match the features' means and covariances of every pair of environments,

    loss = mean_e CE_e + weight * mean_{e<e'} [mean_d (mu_e - mu_e')^2 + mean (C_e - C_e')^2]

(`jtl.discrepancy.mean_cov_distance`, unbiased covariances of the network's features), weight
1 = DomainBed's mmd_gamma default. Distinct from `coral`, the transductive Deep CORAL between
the sources and an unlabeled target (no mean term, 1 / 4d^2, on the logits by default): this
one never reads the target, so it is its own method (`uses` differs).
"""

from __future__ import annotations

import dataclasses

from jtl.discrepancy import mean_cov_distance
from jtl.methods.base import METHODS
from jtl.methods.multidomain import PairwiseFeaturePenalty


@METHODS.register("dg_coral")
@dataclasses.dataclass(frozen=True)
class DGCORAL(PairwiseFeaturePenalty):
    method_name = "dg_coral"

    def distance(self, x, y):
        return mean_cov_distance(x, y)
