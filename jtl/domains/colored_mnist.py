"""DomainBed's ColoredMNIST, one environment per domain (`jtl/domains/_domainbed_mnist.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jtl.domains import _domainbed_mnist as dm
from jtl.domains.base import DOMAINS, LoadContext, RawData


@DOMAINS.register("colored_mnist")
def load_colored(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """One ColoredMNIST environment (`env`: 0/'+90%', 1/'+80%', 2/'-90%'): 2 classes,
    (n, 28, 28, 2) uint8, no test split (`test_fraction` holds one out)."""
    i = dm.pick_env(cfg.get("env", 0), dm.COLORED_ENVIRONMENTS)
    seed = dm.check_seed(cfg.get("seed", 0))
    x, y = dm.mnist_70k(cfg, ctx)
    images, labels = dm.colored_environments(x, y, seed, only=i)[i]  # type: ignore[misc]
    return RawData(x_train=images, y_train=labels, num_classes=2)
