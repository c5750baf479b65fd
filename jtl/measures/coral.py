"""CORAL as a measure: the CORAL distance of `jtl.discrepancy`, the same function the `coral`
method minimises (the measure's entry point is `coral_measure` in `base.py`)."""

from jtl.discrepancy import coral_distance, covariance

__all__ = ["coral_distance", "covariance"]
