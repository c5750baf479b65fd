"""TFDS builders for the offline MNIST and USPS files (kept private: importing TFDS is slow).

They read the files TFDS calls "manually downloaded" (`manual_dir`), store `Tensor` features
(not `Image`, whose encoding needs TensorFlow) as array_record, and keep the examples in the
order they were generated. Bump `VERSION` whenever the stored content changes (e.g. the
MNIST split): the version is the cache key under `tfds_dir`.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

_INSTRUCTIONS = "Files are read from the folder given as `manual_dir` (jtl's `paths.data_dir`)."


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A gzipped IDX file of uint8 (MNIST's format: magic 0x0000080N, N big-endian sizes, then
    the raw bytes) -> array of the shape its header states."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = np.frombuffer(data[: 4 * (1 + ndim)], dtype=">u4")
    shape = tuple(int(n) for n in header[1:])
    if header[0] != 0x800 + ndim or len(data) != 4 * (1 + ndim) + int(np.prod(shape)):
        raise ValueError(f"{path}: not a {ndim}-d uint8 IDX file (header {header.tolist()}, "
                         f"{len(data)} bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=4 * (1 + ndim)).reshape(shape)


class _OfflineBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    # No URL checksums to look up. TFDS 4.9 finds them via `code_path`, which needs the
    # undeclared `importlib_resources` package for any builder that lives in a package.
    code_path = None
    image_shape: tuple[int, int, int]
    image_dtype: Any

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=self.image_shape, dtype=self.image_dtype),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
        )

    def _generate_examples(self, x: np.ndarray, y: np.ndarray,
                           index: np.ndarray) -> Iterator[tuple[int, dict[str, Any]]]:
        """Keyed by the index in the source file, so an example can be traced back."""
        for xi, yi, i in zip(x, y, index, strict=True):
            yield int(i), {"image": xi.reshape(self.image_shape), "label": int(yi)}


class JtlMnistOffline(_OfflineBuilder):
    """Official MNIST: the 60,000 train and 10,000 test images in their file order."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "t10k split 8000/2000 by RandomState(0).permutation.",
        "2.0.0": "The official split: train-* files 60000 train, t10k-* files 10000 test."}
    image_shape = (28, 28, 1)
    image_dtype = np.uint8

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        d = Path(dl_manager.manual_dir)
        out = {}
        for split, stem in (("train", "train"), ("test", "t10k")):
            x = read_idx(d / f"{stem}-images-idx3-ubyte.gz", 3)
            y = read_idx(d / f"{stem}-labels-idx1-ubyte.gz", 1)
            if x.shape[1:] != (28, 28) or len(x) != len(y):
                raise ValueError(f"{d}: {stem} images {x.shape} do not match labels {y.shape}")
            out[split] = self._generate_examples(x, y, np.arange(len(y)))
        return out


class JtlUspsOffline(_OfflineBuilder):
    """USPS (Hull 1994) 16x16 digits in [0, 1], its usual 7291 train / 2007 test split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "usps.npz as given: 7291 train / 2007 test."}
    image_shape = (16, 16, 1)
    image_dtype = np.float32

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        with np.load(Path(dl_manager.manual_dir) / "usps.npz") as d:
            arrays = {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        return {s: self._generate_examples(arrays[f"x_{s}"].astype(np.float32), arrays[f"y_{s}"],
                                           np.arange(len(arrays[f"y_{s}"])))
                for s in ("train", "test")}
