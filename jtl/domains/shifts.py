"""Shift transforms composable on any domain (placeholder: filled in by the domains work)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jtl.domains.base import Split
from jtl.errors import JtlError


def apply_shifts(shifts: Sequence[Any], train: Split, val: Split, test: Split,
                 num_classes: int, seed: int):
    if shifts:
        raise JtlError("shifts are not implemented yet")
    return train, val, test, num_classes
