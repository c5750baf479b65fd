"""USPS from the offline usps.npz: 16x16 digits in [0, 1], 7291 train / 2007 test."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jtl.domains._offline import load_offline
from jtl.domains.base import DOMAINS, LoadContext, RawData

# sha256 of the file under `paths.data_dir` (see shared/data/README.md).
FILES = {"usps/usps.npz": "c4b46d2de18f2fc59cdbd4117a86450c27fd9b3d986cb145c7e95848380e7bc9"}


@DOMAINS.register("usps")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """The classic MNIST<->USPS partner domain, with its own train/test split as published."""
    splits = load_offline("JtlUspsOffline", ctx.data_dir, ctx.tfds_dir, "usps", FILES)
    (x_tr, y_tr), (x_te, y_te) = splits["train"], splits["test"]
    return RawData(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, num_classes=10,
                   value_range=(0.0, 1.0))
