"""imagefolder / office31: a `<root>/<class>/<image>` tree decoded once into a cached uint8
copy; sorted classes, labels, the storage recipe, stratified deterministic test split or the
whole domain, the crash-safe cache, the manifest check, and the real Office-31 dslr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from domain_testkit import DATA_DIR
from PIL import Image

from jtl.domains import imagefolder
from jtl.domains.base import LoadContext, build_domain
from jtl.errors import JtlError

# class -> image count: unsorted on purpose, uneven per class
COUNTS = {"cat": 10, "ant": 5, "bee": 7}
SIZE = 16


def write_tree(root: Path, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """PNG and JPEG images of several shapes and modes (RGB, grayscale, RGBA) per class,
    plus files the loader must skip; returns each class's pixels (of the PNGs: exact)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {}
    for cls, n in COUNTS.items():
        (root / cls).mkdir(parents=True)
        out[cls] = []
        for i in range(n):
            h, w = (SIZE, SIZE) if i % 3 == 0 else (SIZE + 8 + i, SIZE + 3)
            px = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            if i % 4 == 1:
                Image.fromarray(px[..., 0]).save(root / cls / f"{i:02d}.png")  # grayscale
            elif i % 4 == 2:
                Image.fromarray(px).save(root / cls / f"{i:02d}.JPG", quality=90)
            else:
                Image.fromarray(px).save(root / cls / f"{i:02d}.png")
            out[cls].append(px)
    (root / "ant" / ".hidden.png").write_bytes(b"not an image")
    (root / "ant" / "notes.txt").write_text("skipped")
    (root / ".cache").mkdir()
    return out


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    write_tree(tmp_path / "tree")
    return tmp_path / "tree"


@pytest.fixture()
def ictx(tmp_path: Path) -> LoadContext:
    return LoadContext(data_dir=tmp_path, tfds_dir=tmp_path / "cache")


def build(root: Path, ctx: LoadContext, **kw):
    cfg = {"name": "imagefolder", "root": str(root), "storage_size": SIZE, **kw}
    return build_domain(cfg, (SIZE, SIZE, 3), ctx, role="target")


def test_classes_sorted_labels_uint8(tmp_path: Path, ictx: LoadContext):
    pixels = write_tree(tmp_path / "tree")
    raw = imagefolder.load({"root": str(tmp_path / "tree"), "storage_size": SIZE}, ictx)
    assert raw.class_names == ("ant", "bee", "cat") and raw.num_classes == 3
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (22, SIZE, SIZE, 3)
    np.testing.assert_array_equal(raw.y_train, [0] * 5 + [1] * 7 + [2] * 10)
    # a PNG at the storage size is stored exactly; grayscale becomes RGB
    np.testing.assert_array_equal(raw.x_train[0], pixels["ant"][0])
    np.testing.assert_array_equal(raw.x_train[1][..., 0], raw.x_train[1][..., 2])


def test_storage_recipe_is_torchvision_resize_then_center_crop(tmp_path: Path):
    px = np.random.default_rng(1).integers(0, 256, (37, 23, 3), dtype=np.uint8)
    Image.fromarray(px).save(tmp_path / "a.png")
    im = Image.fromarray(px).resize((SIZE, int(SIZE * 37 / 23)), Image.BILINEAR)
    top = round((im.size[1] - SIZE) / 2)
    want = np.asarray(im.crop((0, top, SIZE, top + SIZE)))
    np.testing.assert_array_equal(imagefolder.decode(tmp_path / "a.png", SIZE), want)


def test_held_out_test_is_stratified_and_deterministic(tree: Path, ictx: LoadContext):
    d = build(tree, ictx, test_fraction=0.2, val_fraction=0.0)
    # floor(0.2 * n) of every class: 1 of 5 ants, 1 of 7 bees, 2 of 10 cats
    np.testing.assert_array_equal(np.bincount(d.test.y), [1, 1, 2])
    assert len(d.train) == 18 and d.class_names == ("ant", "bee", "cat")
    again = build(tree, ictx, test_fraction=0.2, val_fraction=0.0)
    np.testing.assert_array_equal(again.test.stored, d.test.stored)
    other = build(tree, ictx, test_fraction=0.2, val_fraction=0.0, split_seed=5)
    assert not np.array_equal(other.test.stored, d.test.stored)
    np.testing.assert_array_equal(np.bincount(other.test.y), [1, 1, 2])


def test_test_all_scores_the_whole_domain(tree: Path, ictx: LoadContext):
    d = build(tree, ictx, test="all", val_fraction=0.0)
    assert len(d.test) == len(d.train) == 22
    np.testing.assert_array_equal(np.sort(d.test.y), np.sort(d.train.y))
    sub = build(tree, ictx, test="all", classes=[2, 0])
    assert sub.class_names == ("cat", "ant") and sub.num_classes == 2


def test_cache_is_reused_and_crash_safe(tree: Path, ictx: LoadContext,
                                        monkeypatch: pytest.MonkeyPatch):
    decode = imagefolder.decode
    calls = []

    def failing(path: Path, size: int) -> np.ndarray:
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt  # a crash mid-way
        return decode(path, size)

    monkeypatch.setattr(imagefolder, "decode", failing)
    with pytest.raises(KeyboardInterrupt):
        build(tree, ictx)
    entries = list((Path(ictx.tfds_dir) / "imagefolder").iterdir())
    assert [p.suffix for p in entries if not p.name.startswith(".")] == [".partial"]
    monkeypatch.setattr(imagefolder, "decode", decode)
    first = build(tree, ictx)  # replaces the partial copy
    monkeypatch.setattr(imagefolder, "decode", lambda *a: pytest.fail("decoded again"))
    second = build(tree, ictx)
    np.testing.assert_array_equal(first.train.stored, second.train.stored)
    # changed content is a new copy, never the stale one
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(tree / "ant" / "00.png")
    monkeypatch.setattr(imagefolder, "decode", decode)
    raw = imagefolder.load({"root": str(tree), "storage_size": SIZE}, ictx)
    assert raw.x_train[0].max() == 0


def test_bad_trees_are_one_line(tree: Path, ictx: LoadContext, tmp_path: Path):
    with pytest.raises(JtlError, match="no such folder"):
        imagefolder.load({"root": str(tmp_path / "nope")}, ictx)
    (tree / "dog").mkdir()
    with pytest.raises(JtlError, match=r"class folder\(s\) \['dog'\] hold no image"):
        imagefolder.load({"root": str(tree)}, ictx)
    (tree / "dog" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(JtlError, match=r"dog/x\.jpg: not a readable image"):
        imagefolder.load({"root": str(tree), "storage_size": SIZE}, ictx)


def test_manifest_is_checked(tree: Path, ictx: LoadContext):
    lines = [f"{imagefolder.sha256_of(p)}  tree/{p.relative_to(tree).as_posix()}"
             for p in sorted(tree.rglob("*")) if p.suffix.lower() in (".png", ".jpg")
             and not p.name.startswith(".")]
    manifest = tree.parent / "MANIFEST.sha256"
    manifest.write_text("\n".join(lines) + "\n")
    imagefolder.load({"root": str(tree), "storage_size": SIZE, "manifest": str(manifest)}, ictx)
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(tree / "bee" / "00.png")
    with pytest.raises(JtlError, match=r"does not match manifest .* 1 image\(s\) differ"):
        imagefolder.load({"root": str(tree), "manifest": str(manifest)}, ictx)


OFFICE31 = DATA_DIR / "office31"
needs_office31 = pytest.mark.skipif(not (OFFICE31 / "MANIFEST.sha256").is_file(),
                                    reason=f"{OFFICE31} is absent")


@needs_office31
def test_office31_manifest_matches_the_shared_images():
    """The checksum gate on the real files, without decoding them (a fraction of a second)."""
    root = OFFICE31 / "dslr" / "images"
    classes, files = imagefolder.scan(root)
    assert len(classes) == 31 and len(files) == 498 and classes[0] == "back_pack"
    sums = {rel: imagefolder.sha256_of(root / rel) for rel, _ in files}
    imagefolder.check_manifest("office31/MANIFEST.sha256", root, sums, DATA_DIR)
    sums[files[0][0]] = "0" * 64
    with pytest.raises(JtlError, match="does not match manifest"):
        imagefolder.check_manifest("office31/MANIFEST.sha256", root, sums, DATA_DIR)


@needs_office31
@pytest.mark.slow  # decodes 498 1000x1000 JPEGs: ~5 s on 2 cores
def test_office31_dslr(tmp_path: Path):
    ctx = LoadContext(data_dir=DATA_DIR, tfds_dir=tmp_path)
    d = build_domain({"name": "office31", "env": "dslr", "val_fraction": 0.0}, (224, 224, 3),
                     ctx, role="target")
    assert d.num_classes == 31 and d.class_names[0] == "back_pack"
    assert d.class_names[-1] == "trash_can"
    assert len(d.train) + len(d.test) == 498 and d.train.stored.shape[1:] == (256, 256, 3)
    assert d.train.stored.dtype == np.uint8
    whole = build_domain({"name": "office31", "env": "dslr", "test": "all"}, (224, 224, 3),
                         ctx, role="target")
    assert len(whole.test) == 498
    np.testing.assert_array_equal(np.bincount(whole.test.y)[:3], [12, 21, 24])  # README
