"""Shared plumbing for the offline domains: checksum gate, cached TFDS preparation, reading.

The offline files go through a TFDS builder (not straight into numpy) so that offline and
online domains share one storage format and one reading path, and the prepared array_record
copy is cached under `tfds_dir` with a version that says which split it holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtl.errors import JtlError
from jtl.rundir import file_lock


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(data_dir: Path, files: Mapping[str, str], online_hint: str = "") -> None:
    """Fail unless every `files` entry (path relative to data_dir -> sha256) is intact.

    Checked on every load (a few ms), so a cached copy is never silently used in place of
    files that have gone missing or changed. `online_hint` ends the message with the online
    alternative, where the data set has one.
    """
    for rel, expected in files.items():
        path = Path(data_dir) / rel
        fix = (f"Point `paths.data_dir=...` at the folder that holds {rel.split('/')[0]}/ "
               f"(see its README.md)" + (f", or, when online, {online_hint}." if online_hint
                                         else "."))
        if not path.is_file():
            raise JtlError(f"offline data file {path} is missing (expected sha256 {expected}). "
                           + fix)
        actual = sha256_of(path)
        if actual != expected:
            raise JtlError(f"offline data file {path} is corrupt: sha256 {actual}, expected "
                           f"{expected}. Restore the original file. " + fix)


def unreadable_cache(folder: Path, error: BaseException) -> JtlError:
    """The one-line error for a prepared copy that cannot be read (e.g. a truncated file) or
    written (e.g. a full disk): deleting it makes the next run prepare it again."""
    detail = (str(error).strip().splitlines() or [""])[0][:200]
    return JtlError(f"the prepared data under {folder} cannot be used ({type(error).__name__}: "
                    f"{detail}); delete {folder} and run again to prepare it anew.")


def prepare_cached(builder_cls: type, tfds_dir: Path, manual_dir: Path) -> Any:
    """The builder for `tfds_dir`, prepared from `manual_dir` unless already there.

    TFDS itself writes into a temporary folder and renames it when done, so a reader never
    sees half a data set; the lock keeps a second process from preparing the same one.
    """
    import tensorflow_datasets as tfds

    tfds_dir = Path(tfds_dir)
    tfds_dir.mkdir(parents=True, exist_ok=True)
    builder = builder_cls(data_dir=tfds_dir, file_format="array_record")
    if builder.is_prepared():
        return builder
    with file_lock(tfds_dir / f".{builder.name}.lock"):
        # Re-create: another process may have finished while this one waited.
        builder = builder_cls(data_dir=tfds_dir, file_format="array_record")
        if not builder.is_prepared():
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def read_split(source: Sequence[Mapping[str, Any]], image_key: str = "image",
               label_key: str = "label", batched: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A random-access split (e.g. a TFDS data source) -> stacked (images, labels).

    `batched` uses `__getitems__`, ~35% faster on real array_record data, but broken under
    `tfds.testing.mock_data` (TFDS 4.9), which the catalog loader's tests rely on.
    """
    n = len(source)
    if n == 0:
        raise JtlError("the split is empty")
    first = source[0]
    for key in (image_key, label_key):
        if key not in first:
            raise JtlError(f"examples have no key '{key}'; their keys are {sorted(first)}. "
                           f"Set `image_key`/`label_key` to the right ones.")
    if batched:
        items = [first, *source.__getitems__(list(range(1, n)))]  # type: ignore[attr-defined]
    else:
        items = [first, *(source[i] for i in range(1, n))]
    try:
        x = np.stack([np.asarray(e[image_key]) for e in items])
    except ValueError as e:
        raise JtlError(f"images under '{image_key}' differ in shape; only fixed-size images "
                       f"are supported ({e})") from e
    y = np.asarray([e[label_key] for e in items])
    return x, y


def load_offline(builder_name: str, ctx_data_dir: Path, tfds_dir: Path, subdir: str,
                 files: Mapping[str, str], online_hint: str = ""
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Verify the files, prepare (once) and read every split of an offline builder."""
    verify_files(ctx_data_dir, files, online_hint)
    from jtl.domains import _builders

    builder_cls = getattr(_builders, builder_name)
    try:
        builder = prepare_cached(builder_cls, tfds_dir, Path(ctx_data_dir) / subdir)
        sources = builder.as_data_source()
        return {str(name): read_split(src, batched=True) for name, src in sources.items()}
    except JtlError:
        raise
    except Exception as e:
        folder = Path(tfds_dir) / builder_cls.name / str(builder_cls.VERSION)
        raise unreadable_cache(folder, e) from e
