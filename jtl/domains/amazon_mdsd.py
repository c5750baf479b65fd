"""Amazon reviews (Blitzer et al. 2007) as the DANN authors ship them: a `features` domain.

`product: books|dvd|electronics|kitchen`. Each review is a 5000-d vector of unigram/bigram
counts (Chen et al. 2012's representation; one index space for all four products), label 1
(positive) or 0 (negative; the files say -1). `train` = the product's 2000 labeled reviews,
`test` = its 'unlabeled' set with rating-derived labels (4465 / 3586 / 5681 / 5945), as
DANN's `experiments_amazon.py` uses them (source train labeled, target train unlabeled by
`uses`, target test for accuracy). The files are read together with
`sklearn.datasets.load_svmlight_files(n_features=5000)`, as DANN's code reads them.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from jtl.domains._offline import verify_files
from jtl.domains.base import DOMAINS, LoadContext, RawData
from jtl.errors import JtlError

PRODUCTS = ("books", "dvd", "electronics", "kitchen")
N_FEATURES = 5000
SUBDIR = "text/amazon_mdsd/dann_svmlight"
# sha256 of the .gz files (shared/data/text/amazon_mdsd/SHA256SUMS).
SHA256 = {
    "books_train": "93a6e772bb6a55f728a31bcd405091cfbdd83c65e0592ced4edafed0556d00db",
    "books_test": "0f139e7404dda1c014a6410b485513e163bf16526da4cbdcd6dac893ce4b9842",
    "dvd_train": "ea44d696f2e32d93c4b5f53dc3f5b50aa17a4e2c1af88530cb88ea1d32609ed4",
    "dvd_test": "657046eca0635f24d045466d2d9ed76161fbe7e0bbe95b2ec3a92da88b7b8e46",
    "electronics_train": "10d34b416b4c7e4e55227e136a85da9493937ea2b12149f814ed6cacec0cb972",
    "electronics_test": "cad5419fa3f27bf00b877418c9f848782c80051a875e077871f30f112c17ddcd",
    "kitchen_train": "a7c6491d2b917bca70968b9ea0a45d9cbf07717a00fc17224ceadbf2d473151e",
    "kitchen_test": "270ff6cfa01e2bbefd47798ac11f491dff11c3a34a09faec0852d30704283ec0",
}
FILES = {f"{SUBDIR}/{k}.svmlight.gz": h for k, h in SHA256.items()}


@DOMAINS.register("amazon_mdsd")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """One product's reviews as (N, 5000) float32 counts and 0/1 labels."""
    from sklearn.datasets import load_svmlight_files

    product = cfg.get("product", "books")
    if product not in PRODUCTS:
        raise JtlError(f"product={product!r}: one of {list(PRODUCTS)}")
    names = [f"{SUBDIR}/{product}_{s}.svmlight.gz" for s in ("train", "test")]
    verify_files(ctx.data_dir, {n: FILES[n] for n in names})
    files = []
    for n in names:
        with gzip.open(ctx.data_dir / n, "rb") as f:
            files.append(f.read())
    x_tr, y_tr, x_te, y_te = load_svmlight_files([io.BytesIO(b) for b in files],
                                                 n_features=N_FEATURES, zero_based=True)
    return RawData(x_train=x_tr.toarray().astype(np.float32), y_train=_labels(y_tr),
                   x_test=x_te.toarray().astype(np.float32), y_test=_labels(y_te),
                   num_classes=2, field="features")


def _labels(y: np.ndarray) -> np.ndarray:
    """DANN's -1/+1 -> 0/1 (negative, positive)."""
    return (np.asarray(y) > 0).astype(np.int32)
