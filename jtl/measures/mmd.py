"""MMD as a measure: the unbiased multi-kernel MMD^2 of `jtl.discrepancy`, the same function the
`mmd` method minimises (the measure's entry point is `mmd_measure` in `base.py`)."""

from jtl.discrepancy import mk_mmd

__all__ = ["mk_mmd"]
