"""Moved to `jtl.results.report`; this name is that module itself, for old imports."""

import sys

from jtl.results import report

sys.modules[__name__] = report
