"""The mmd measure and the mmd method share one MK-MMD: `jtl.discrepancy.mk_mmd` (tested in
tests/test_discrepancy.py against a loop reference)."""

from __future__ import annotations

import jtl.discrepancy
import jtl.measures.mmd
import jtl.methods.mmd


def test_measure_and_method_use_the_discrepancy_function():
    assert jtl.measures.mmd.mk_mmd is jtl.discrepancy.mk_mmd
    assert jtl.methods.mmd.mk_mmd is jtl.discrepancy.mk_mmd
