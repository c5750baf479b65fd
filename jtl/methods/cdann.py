"""CDANN (Li et al. 2018, conditional domain-adversarial), as DomainBed's `CDANN`: `dg_dann`
with the discriminator conditioned on the class, disc(GRL(f) + embed(y)) for a learned class
embedding `class_embed/` (trained with the discriminator, DomainBed's disc optimizer), and its
cross-entropy class-balanced, weights 1 / (n_y K) (DomainBed's class_balance), so that the
environments are told apart, and aligned, within each class. Everything else, the
differences from DomainBed included, as `dg_dann`.
"""

from __future__ import annotations

import dataclasses

from jtl.methods.base import METHODS
from jtl.methods.dg_dann import DGDANN


@METHODS.register("cdann")
@dataclasses.dataclass(frozen=True)
class CDANN(DGDANN):
    method_name = "cdann"
    conditional = True
