"""DomainBed's RotatedMNIST, one environment per domain (`jtl/domains/_domainbed_mnist.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jtl.domains import _domainbed_mnist as dm
from jtl.domains.base import DOMAINS, LoadContext, RawData
from jtl.errors import JtlError


@DOMAINS.register("rotated_mnist")
def load_rotated(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """One RotatedMNIST environment (`env`: an index 0..5 or its angle 0, 15, ..., 75):
    10 classes, (n, 28, 28, 1) uint8, no test split (`test_fraction` holds one out)."""
    i = dm.pick_env(cfg.get("env", 0), dm.ROTATED_ENVIRONMENTS, numeric_names=True)
    seed = dm.check_seed(cfg.get("seed", 0))
    interpolation = str(cfg.get("interpolation") or "bicubic")
    if interpolation not in dm.INTERPOLATIONS:
        raise JtlError(f"interpolation={interpolation!r}: use one of "
                       f"{', '.join(dm.INTERPOLATIONS)}")
    x, y = dm.mnist_70k(cfg, ctx)
    images, digits = dm.rotated_environments(x, y, seed, only=i,  # type: ignore[misc]
                                          interpolation=interpolation)[i]
    return RawData(x_train=images, y_train=digits, num_classes=10)
