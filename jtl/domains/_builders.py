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

# MNIST offline: 8000 train / 2000 test out of the 10k official test images. The t10k file's
# first and last 5000 come from different writer populations, so the split is a fixed
# permutation, not a cut. The legacy RandomState stream is frozen by NumPy (NEP 19).
MNIST_SPLIT_SEED = 0
MNIST_NUM_TRAIN = 8000

_INSTRUCTIONS = "Files are read from the folder given as `manual_dir` (jtl's `paths.data_dir`)."


def _read_idx(path: Path, magic: int, shape: tuple[int, ...]) -> np.ndarray:
    """An IDX file (MNIST's format: big-endian header, then raw uint8) -> array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = np.frombuffer(data[: 4 * (1 + len(shape))], dtype=">u4")
    if header[0] != magic or tuple(header[1:]) != shape:
        raise ValueError(f"{path}: unexpected IDX header {header.tolist()}")
    return np.frombuffer(data[4 * (1 + len(shape)):], dtype=np.uint8).reshape(shape)


def mnist_split_indices() -> dict[str, np.ndarray]:
    """Which t10k indices form the offline train and test splits (each sorted)."""
    perm = np.random.RandomState(MNIST_SPLIT_SEED).permutation(10_000)
    return {"train": np.sort(perm[:MNIST_NUM_TRAIN]), "test": np.sort(perm[MNIST_NUM_TRAIN:])}


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
    """Official MNIST t10k images, split 8000 train / 2000 test by a fixed permutation."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "t10k split 8000/2000 by RandomState(0).permutation."}
    image_shape = (28, 28, 1)
    image_dtype = np.uint8

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        d = Path(dl_manager.manual_dir)
        x = _read_idx(d / "t10k-images-idx3-ubyte.gz", 2051, (10_000, 28, 28))
        y = _read_idx(d / "t10k-labels-idx1-ubyte.gz", 2049, (10_000,))
        return {name: self._generate_examples(x[idx], y[idx], idx)
                for name, idx in mnist_split_indices().items()}


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
