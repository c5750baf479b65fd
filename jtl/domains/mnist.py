"""MNIST from the offline t10k files: 8000 train / 2000 test (a fixed split of the 10k)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jtl.domains._offline import load_offline
from jtl.domains.base import DOMAINS, LoadContext, RawData

# sha256 of the files under `paths.data_dir` (see shared/data/README.md).
FILES = {
    "mnist/t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


@DOMAINS.register("mnist")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """28x28 uint8 digits; only the official test set exists offline, hence the split."""
    splits = load_offline("JtlMnistOffline", ctx.data_dir, ctx.tfds_dir, "mnist", FILES, "mnist")
    (x_tr, y_tr), (x_te, y_te) = splits["train"], splits["test"]
    return RawData(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, num_classes=10,
                   max_value=255.0)
