"""Any TFDS catalog data set as a domain, for machines that can download (or already have) it.

Read through `tfds.data_source` (array_record, random access), so no TensorFlow is needed.
The whole split is loaded into memory: meant for digit/CIFAR-sized data sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.domains._offline import read_split
from jtl.domains.base import DOMAINS, LoadContext, RawData
from jtl.errors import JtlError


def _open(dataset: str, splits: list[str], data_dir: Path) -> list[Any]:
    """`tfds.data_source` with every failure turned into a message a user can act on."""
    import tensorflow_datasets as tfds

    offline_hint = ("If this machine is offline, use the offline domains (`mnist`, `usps`) or "
                    "prepare the data set elsewhere and point `tfds_data_dir` at it.")
    try:
        # file_format must be explicit: with a data_dir, TFDS would otherwise write tfrecord,
        # which has no random-access data source.
        return tfds.data_source(dataset, split=splits, data_dir=str(data_dir),
                                builder_kwargs={"file_format": "array_record"})
    except tfds.core.registered.DatasetNotFoundError as e:
        raise JtlError(f"TFDS has no data set '{dataset}'. Check the name in the TFDS catalog "
                       f"(https://www.tensorflow.org/datasets/catalog).") from e
    except ModuleNotFoundError as e:
        raise JtlError(f"TFDS needs the package '{e.name}' to prepare '{dataset}'; install it "
                       f"into the environment. " + offline_hint) from e
    except Exception as e:
        raise JtlError(f"could not load TFDS data set '{dataset}' splits {splits} from "
                       f"{data_dir}: {type(e).__name__}: {e}. " + offline_hint) from e


@DOMAINS.register("tfds")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """Config keys: dataset, train_split, test_split (null: base splits train), image_key,
    label_key, tfds_data_dir (null: `paths.tfds_dir`)."""
    dataset = cfg.get("dataset")
    if not dataset:
        raise JtlError("the `tfds` domain needs `dataset`, e.g. `target.dataset=mnist`")
    train_split = str(cfg.get("train_split") or "train")
    test_split = cfg.get("test_split", "test")
    image_key = str(cfg.get("image_key") or "image")
    label_key = str(cfg.get("label_key") or "label")
    data_dir = Path(cfg.get("tfds_data_dir") or ctx.tfds_dir).expanduser()

    splits = [train_split] + ([str(test_split)] if test_split else [])
    sources = _open(str(dataset), splits, data_dir)
    arrays = []
    for name, src in zip(splits, sources, strict=True):
        try:
            arrays.append(read_split(src, image_key, label_key))
        except JtlError as e:
            raise JtlError(f"TFDS data set '{dataset}' split '{name}': {e}") from e
    x_tr, y_tr = arrays[0]
    x_te, y_te = arrays[1] if test_split else (None, None)

    num_classes = None
    features = sources[0].dataset_info.features
    if label_key in features and hasattr(features[label_key], "num_classes"):
        num_classes = int(features[label_key].num_classes)
    max_value = 255.0 if x_tr.dtype == np.uint8 else None
    return RawData(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                   num_classes=num_classes, max_value=max_value)
