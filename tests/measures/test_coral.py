"""The coral measure and the coral method share one CORAL distance:
`jtl.discrepancy.coral_distance` (tested in tests/test_discrepancy.py against a loop reference)."""

from __future__ import annotations

import jtl.discrepancy
import jtl.measures.coral
import jtl.methods.coral


def test_measure_and_method_use_the_discrepancy_function():
    assert jtl.measures.coral.coral_distance is jtl.discrepancy.coral_distance
    assert jtl.methods.coral.coral_distance is jtl.discrepancy.coral_distance
