"""Transferability and domain-discrepancy measures.

Each measure is one file registered in `MEASURES` (see `base.py` for the contract) with its
options in `conf/measure/<name>.yaml`; the math functions are numpy in, float out.
"""

from jtl.measures.base import MEASURES, MeasureContext, MeasureValues, run_measures

__all__ = ["MEASURES", "MeasureContext", "MeasureValues", "run_measures"]
