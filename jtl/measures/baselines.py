"""Moved to `jtl.results.baselines`; this name is that module itself, for old imports."""

import sys

from jtl.results import baselines

sys.modules[__name__] = baselines
