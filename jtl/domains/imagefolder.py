"""Any `<root>/<class>/<image>` tree as an image domain, decoded once into a cached uint8 copy.

- Classes are the names of root's sub-folders, sorted (torchvision `ImageFolder`'s order):
  label i is the i-th name, recorded as `Domain.class_names` and in the cache's `meta.json`.
  A class folder's images are every file with an image suffix below it, sorted by path.
- Each image is decoded once with Pillow (RGB), its shorter side resized to `storage_size`
  (bilinear, antialiased: torchvision's `Resize(size)` on a PIL image), then centre-cropped
  to a `storage_size` square (torchvision's `CenterCrop`: top = round((h - s) / 2)). The
  default 256 lets the step run TLlib's resize-256 / crop-224 recipe on the stored pixels;
  Office-31's images are square, so this equals TLlib's `ResizeImage(256)`.
- The copy is cached under `paths.tfds_dir` (jtl's prepared data, beside the TFDS builders),
  keyed by the content (each file's path and sha256) and `storage_size`: changed images make
  a new copy, never a stale read. It is written into a partial folder and renamed when
  complete, under a lock, so a crash or a second process never leaves half a copy.
  (Not a TFDS builder: a tree of any content and size is one cache entry, not a version.)
- `test: held_out` (default) holds out `test_fraction` of every class (floor, seeded by
  `split_seed`): stratified, deterministic. `test: all` scores the whole domain (the test
  split is every image, and train is every image too): the usual Office-31 protocol, where
  the target is read unlabeled in training and scored entirely.
- `manifest:` a `sha256  relative/path` file (`sha256sum` format, paths relative to its
  folder) that every image under root must match, as the shared data's other domains check
  their files (Office-31's `MANIFEST.sha256`, itself checked against its published sum).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.domains._offline import sha256_of, unreadable_cache, verify_files
from jtl.domains.base import DOMAINS, LoadContext, RawData, locate
from jtl.errors import JtlError
from jtl.rundir import file_lock

VERSION = 1  # of the cached copy's format and decoding; part of the cache key
SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TESTS = ("held_out", "all")
# Published sums of manifests under `paths.data_dir` (shared/data/office31/README.md).
MANIFESTS = {"office31/MANIFEST.sha256":
             "2a04ad56f22bd9640601022fd64045495bb4f8a95374fee3a007a2ea2637e434"}


@DOMAINS.register("imagefolder")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """The tree's images (N, S, S, 3) uint8 with their class indices; no test split of its
    own (`build_domain` holds one out per class, or `test: all` makes it the whole domain)."""
    root = _root(cfg.get("root"), ctx.data_dir)
    size = cfg.get("storage_size", 256)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise JtlError(f"storage_size={size!r}: an image side in pixels, at least 8")
    test = cfg.get("test", "held_out")
    if test not in TESTS:
        raise JtlError(f"test={test!r}: one of {list(TESTS)}")
    classes, files = scan(root)
    sums = {rel: sha256_of(root / rel) for rel, _ in files}
    if cfg.get("manifest"):
        check_manifest(str(cfg["manifest"]), root, sums, ctx.data_dir)
    images, labels = cached(root, classes, files, sums, size, ctx.tfds_dir)
    whole = test == "all"
    return RawData(x_train=images, y_train=labels, x_test=images if whole else None,
                   y_test=labels if whole else None, num_classes=len(classes),
                   class_names=tuple(classes), stratified=True)


def _root(root: Any, data_dir: Path) -> Path:
    if not root:
        raise JtlError("root is not set: give the folder of class folders, e.g. "
                       "target.root=/data/office31/amazon/images")
    found = locate(str(root), data_dir)
    if found is None or not found.is_dir():
        raise JtlError(f"root={root}: no such folder (as given, or under paths.data_dir="
                       f"{data_dir}); give the folder that holds one folder per class")
    return found


def scan(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(sorted class names, [(path relative to root, label)] sorted by path). Hidden files
    and folders are skipped; a class without an image is refused (never learned, yet
    scored)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise JtlError(f"root={root} has no class folders; the layout is <root>/<class>/<image>")
    files, empty = [], []
    for label, name in enumerate(classes):
        found = _images(root / name, root)
        if not found:
            empty.append(name)
        files += [(rel, label) for rel in found]
    if empty:
        raise JtlError(f"root={root}: class folder(s) {empty[:5]} hold no image "
                       f"({', '.join(SUFFIXES)}); remove them or add their images")
    return classes, files


def _images(folder: Path, root: Path) -> list[str]:
    """Paths (relative to root, sorted) of the image files below `folder`, hidden ones not."""
    out = []
    for dirpath, dirnames, names in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out += [Path(dirpath, f).relative_to(root).as_posix() for f in names
                if not f.startswith(".") and Path(f).suffix.lower() in SUFFIXES]
    return sorted(out)


def check_manifest(manifest: str, root: Path, sums: Mapping[str, str], data_dir: Path) -> None:
    """Every image under root has the sha256 the manifest lists, and the manifest lists no
    image of root that is missing; a manifest with a published sum is checked first."""
    path = locate(manifest, data_dir)
    if path is None:
        raise JtlError(f"manifest={manifest}: no such file (as given, or under paths.data_dir="
                       f"{data_dir})")
    rel = Path(path).relative_to(data_dir).as_posix() if Path(path).is_relative_to(
        data_dir) else None
    if rel in MANIFESTS:
        verify_files(data_dir, {rel: MANIFESTS[rel]})
    listed = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            listed[(path.parent / name.lstrip("*")).resolve()] = digest
    mine = {(root / r).resolve(): s for r, s in sums.items()}
    bad = [str(p) for p, s in mine.items() if listed.get(p) != s]
    root_r = root.resolve()
    missing = [str(p) for p in listed if p.is_relative_to(root_r) and p not in mine]
    if bad or missing:
        what = (f"{len(bad)} image(s) differ from it or are not listed, e.g. {bad[0]}" if bad
                else f"{len(missing)} listed image(s) are missing, e.g. {missing[0]}")
        raise JtlError(f"root={root} does not match manifest {path}: {what}. Restore the "
                       f"original files (see the data's README.md).")


def cache_key(files: list[tuple[str, int]], sums: Mapping[str, str], size: int) -> str:
    import hashlib

    h = hashlib.sha256(f"imagefolder v{VERSION} size {size}\n".encode())
    for rel, label in files:
        h.update(f"{rel}\0{label}\0{sums[rel]}\n".encode())
    return h.hexdigest()[:20]


def cached(root: Path, classes: list[str], files: list[tuple[str, int]],
           sums: Mapping[str, str], size: int, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from the cached copy, decoding it first when there is none."""
    folder = Path(cache_dir) / "imagefolder" / cache_key(files, sums, size)
    if not (folder / "meta.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(folder.parent / f".{folder.name}.lock"):
            if not (folder / "meta.json").is_file():  # another process may have made it
                _write(folder, root, classes, files, size)
    try:
        images = np.load(folder / "images.npy")
        labels = np.load(folder / "labels.npy")
        if images.shape != (len(files), size, size, 3) or labels.shape != (len(files),):
            raise ValueError(f"images {images.shape}, labels {labels.shape} for "
                             f"{len(files)} files")
    except (OSError, ValueError) as e:
        raise unreadable_cache(folder, e) from e
    return images, labels


def _write(folder: Path, root: Path, classes: list[str], files: list[tuple[str, int]],
           size: int) -> None:
    """Decode every image into `<folder>.partial`, then rename it to `folder` (atomic: a
    reader sees no copy or a whole one; a crash leaves a partial folder the next run
    replaces)."""
    from tqdm.auto import tqdm

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    images = np.lib.format.open_memmap(partial / "images.npy", "w+", np.uint8,
                                       (len(files), size, size, 3))
    where = "/".join(root.parts[-2:])
    for i, (rel, _) in enumerate(tqdm(files, desc=f"jtl: decoding {where}/ once (storage_size "
                                      f"{size})", unit="img", leave=False)):
        images[i] = decode(root / rel, size)
    images.flush()
    del images
    np.save(partial / "labels.npy", np.asarray([label for _, label in files], np.int32))
    meta = {"version": VERSION, "root": str(root), "storage_size": size,
            "classes": classes, "files": [rel for rel, _ in files]}
    (partial / "meta.json").write_text(json.dumps(meta, indent=1))
    os.replace(partial, folder)


def decode(path: Path, size: int) -> np.ndarray:
    """One image -> (size, size, 3) uint8: RGB, shorter side to `size` (PIL bilinear,
    antialiased; none when it already is), centre crop, as shared/models/make_reference.py
    preprocesses (there: 256, then a 224 crop)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            if min(w, h) != size:  # torchvision's Resize(size): the long side truncated
                im = im.resize((size, int(size * h / w)) if w <= h else
                               (int(size * w / h), size), Image.BILINEAR)
                w, h = im.size
            left, top = round((w - size) / 2), round((h - size) / 2)
            return np.asarray(im.crop((left, top, left + size, top + size)), np.uint8)
    except OSError as e:
        raise JtlError(f"{path}: not a readable image ({e}); remove it or replace it") from e
