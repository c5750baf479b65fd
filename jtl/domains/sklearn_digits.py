"""scikit-learn's bundled 8x8 digits: an offline domain for tests and quick checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jtl.domains.base import DOMAINS, LoadContext, RawData


@DOMAINS.register("sklearn_digits")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    from sklearn.datasets import load_digits

    d = load_digits()
    return RawData(x_train=d.images, y_train=d.target, num_classes=10,
                   value_range=(0.0, 16.0))
