"""Any TFDS catalog data set as a domain, for machines that can download (or already have) it.

Read through TFDS's array_record data source (random access), so no TensorFlow is needed.
The whole split is loaded into memory: meant for digit/CIFAR-sized data sets. An offline
machine fails in seconds (a TCP connect check before any download; TFDS itself retries for
minutes), and a prepared copy that cannot be read says which folder to delete.
"""

from __future__ import annotations

import socket
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jtl.domains._offline import read_split, unreadable_cache
from jtl.domains.base import DOMAINS, LoadContext, RawData
from jtl.errors import JtlError

# TFDS downloads through Google Cloud Storage (its mirror and most catalog URLs).
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
CONNECT_TIMEOUT_S = 3.0
OFFLINE_HINT = ("Use an offline domain (`mnist`, `usps`, `sklearn_digits`) or your own arrays "
                "(`domain@target=npz target.path=...`), or prepare the data set on a connected "
                "machine and point `tfds_data_dir` at it.")


def internet_reachable(host: tuple[str, int] = DOWNLOAD_HOST,
                       timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """One TCP connect to the download host (or the https proxy, if one is set)."""
    name, port = host
    proxy = urllib.request.getproxies().get("https")
    if proxy:
        url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        name, port = url.hostname or name, url.port or 80
    try:
        with socket.create_connection((name, port), timeout=timeout):
            return True
    except OSError:
        return False


def _builder(dataset: str, data_dir: Path) -> Any:
    """The catalog builder, prepared under `data_dir` (downloading only when online)."""
    import tensorflow_datasets as tfds

    try:
        # file_format must be explicit: with a data_dir, TFDS would otherwise write tfrecord,
        # which has no random-access data source.
        builder = tfds.builder(dataset, data_dir=str(data_dir), file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError as e:
        raise JtlError(f"TFDS has no data set '{dataset}'. Check the name in the TFDS catalog "
                       f"(https://www.tensorflow.org/datasets/catalog).") from e
    except Exception as e:
        raise unreadable_cache(data_dir / dataset.split(":")[0], e) from e
    if builder.is_prepared():
        return builder
    if not internet_reachable():
        host, port = DOWNLOAD_HOST
        raise JtlError(f"this machine is offline (no connection to {host}:{port} within "
                       f"{CONNECT_TIMEOUT_S:g} s) and TFDS data set '{dataset}' is not prepared "
                       f"under {data_dir}. " + OFFLINE_HINT)
    try:
        builder.download_and_prepare()
    except ModuleNotFoundError as e:
        raise JtlError(f"TFDS needs the package '{e.name}' to prepare '{dataset}'; install it "
                       f"into the environment. " + OFFLINE_HINT) from e
    except Exception as e:
        raise JtlError(f"could not prepare TFDS data set '{dataset}' under {data_dir}: "
                       f"{type(e).__name__}: {e}. " + OFFLINE_HINT) from e
    return builder


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

    builder = _builder(str(dataset), data_dir)
    splits = [train_split] + ([str(test_split)] if test_split else [])
    try:
        sources = builder.as_data_source(split=splits)
    except Exception as e:
        raise JtlError(f"TFDS data set '{dataset}' has no splits {splits} ({e}); set "
                       f"`train_split`/`test_split` to existing ones.") from e
    arrays = []
    for name, src in zip(splits, sources, strict=True):
        try:
            arrays.append(read_split(src, image_key, label_key))
        except JtlError as e:
            raise JtlError(f"TFDS data set '{dataset}' split '{name}': {e}") from e
        except Exception as e:
            raise unreadable_cache(Path(builder.data_dir), e) from e
    x_tr, y_tr = arrays[0]
    x_te, y_te = arrays[1] if test_split else (None, None)

    num_classes = None
    features = builder.info.features
    if label_key in features and hasattr(features[label_key], "num_classes"):
        num_classes = int(features[label_key].num_classes)
    return RawData(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                   num_classes=num_classes)

