"""MNIST-C's corruptions as shifts: seeded, range-preserving, and each doing what it claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from domain_testkit import COMMON
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from scipy import ndimage as ndi
from sklearn.datasets import load_digits

from jtl.domains.base import LoadContext, Split, build_domain
from jtl.domains.corruptions import CORRUPTIONS
from jtl.domains.shifts import SHIFTS, apply_shifts
from jtl.errors import JtlError

K = 10
CONF = Path(__file__).resolve().parents[2] / "conf"
NAMES = list(CORRUPTIONS)
# Corruptions that draw nothing: the same output for every seed.
FIXED = {"scale", "brightness", "stripe", "canny_edges"}


def _digits(n: int = 24) -> np.ndarray:
    """sklearn digits drawn 20x20 in a 28x28 frame, as MNIST's digits sit: (n, 28, 28, 1)."""
    d = load_digits().images[:n] / 16.0
    x = np.pad(ndi.zoom(d, (1, 2.5, 2.5), order=1), ((0, 0), (4, 4), (4, 4)))
    return np.clip(x, 0, 1)[..., None].astype(np.float32)


X = _digits()


def _shift(spec: object, x: np.ndarray = X, seed: int = 0) -> np.ndarray:
    """The test split of apply_shifts([spec]) on images x (every split gets the same x)."""
    s = Split.of(x, np.arange(len(x), dtype=np.int32) % K)
    return apply_shifts([spec], s, s, s, K, seed=seed)[2].x


def test_all_fifteen_are_shifts() -> None:
    assert len(NAMES) == 15 and set(NAMES) <= set(SHIFTS)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_range_preserving_and_changing(name: str) -> None:
    a, b, other = _shift(name), _shift(name), _shift(name, seed=1)
    assert a.dtype == np.float32 and a.shape == X.shape
    assert a.min() >= 0.0 and a.max() <= 1.0 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    assert np.array_equal(a, other) == (name in FIXED)
    changed = np.abs(a - X).reshape(len(X), -1).max(axis=1) > 1e-3
    assert changed.all(), f"{name} left {int((~changed).sum())} images unchanged"


@pytest.mark.parametrize("name", sorted(set(NAMES) - FIXED))
def test_draws_per_image(name: str) -> None:
    """Copies of one image are corrupted differently: MNIST-C draws per image."""
    out = _shift(name, np.repeat(X[:1], 6, axis=0))
    assert len({o.tobytes() for o in out}) > 1


@pytest.mark.parametrize("name", NAMES)
def test_other_sizes_and_colour(name: str) -> None:
    x = np.random.default_rng(0).random((3, 20, 24, 3), dtype=np.float32)
    out = _shift(name, x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_severity_parameter() -> None:
    mild = _shift({"name": "shot_noise", "severity": 1})
    assert np.abs(mild - X).mean() < np.abs(_shift("shot_noise") - X).mean()
    assert np.array_equal(_shift({"name": "fog", "severity": 5}), _shift("fog"))  # the default
    for bad in (0, 6, True):
        with pytest.raises(JtlError, match="severity"):
            _shift({"name": "fog", "severity": bad})
    with pytest.raises(JtlError, match="unknown"):
        _shift({"name": "stripe", "severity": 2})  # MNIST-C's stripe has no severity


def test_schema_bounds_severity(ctx: LoadContext) -> None:
    with pytest.raises(JtlError, match=r"target\.shifts\[0\]\.severity=9: .* <= 5"):
        build_domain({"name": "sklearn_digits", **COMMON, "shifts": [
            {"name": "spatter", "severity": 9}]}, (28, 28, 1), ctx, role="target")


def test_shot_noise_is_poisson_counts() -> None:
    out = _shift("shot_noise").astype(np.float64)  # c = 3: Poisson(3x) / 3
    np.testing.assert_allclose(out * 3, np.round(out * 3), atol=1e-5)
    flat = _shift("shot_noise", np.full((40, 28, 28, 1), 0.2, np.float32))
    assert abs(flat.mean() - 0.2) < 0.01  # unbiased below the clip
    assert abs(flat.var() - 0.2 / 3) < 0.01  # var Poisson(0.6) / 9


def test_impulse_noise_is_salt_and_pepper() -> None:
    grey = np.full((40, 28, 28, 1), 0.5, np.float32)
    out = _shift("impulse_noise", grey)
    assert set(np.unique(out)) == {0.0, 0.5, 1.0}
    hit = out != 0.5
    assert abs(hit.mean() - 0.17) < 0.01 and abs((out[hit] == 1).mean() - 0.5) < 0.03


def test_glass_blur_keeps_mass_and_blurs_along_rows() -> None:
    out = _shift("glass_blur")
    assert abs(out.mean() - X.mean()) < 2 / 255  # blur and swaps move mass, 8 bits lose some
    line = np.zeros((8, 28, 28, 1), np.float32)
    line[:, 14, :] = 1  # a horizontal line spreads up and down ...
    spread = _shift("glass_blur", line)[:, :, 4:24, 0].mean(axis=(0, 2))
    assert spread[13] > 0.15 and spread[15] > 0.15 and spread[14] < 0.7
    # Column 0 is never swapped: a line there stays there, blurred along it only, and its
    # first blur is cut to 8 bits (MNIST-C's np.uint8), as a flat grey shows.
    edge = np.zeros((8, 28, 28, 1), np.float32)
    edge[:, 4:24, 0] = 1
    out = _shift("glass_blur", edge)
    assert (out[:, :, 1:] == 0).all() and (out[:, 2:4, 0] > 0).all()
    grey = _shift("glass_blur", np.full((2, 28, 28, 1), 0.5, np.float32))
    np.testing.assert_allclose(grey, 127 / 255, atol=1e-6)


def test_motion_blur_trails_a_point_within_45_degrees() -> None:
    dot = np.zeros((6, 28, 28, 1), np.float32)
    dot[:, 14, 24] = 1.0
    out = _shift("motion_blur", dot)[..., 0]
    for img in out:
        rows, cols = np.nonzero(img > 1e-6)
        assert len(rows) >= 8 and (cols <= 24).all()  # a one-sided 21-tap trail
        assert (np.abs(rows - 14) <= 24 - cols).all()
    assert len({o.tobytes() for o in out}) > 1  # an angle per image


def test_shear_slants_a_vertical_bar() -> None:
    bar = np.zeros((8, 28, 28, 1), np.float32)
    bar[:, 4:24, 13:15] = 1
    out = _shift("shear", bar)[..., 0]
    rows, cols = np.arange(8, 20), np.arange(28)
    slopes = [np.polyfit(rows, [(o[r] * cols).sum() / o[r].sum() for r in rows], 1)[0]
              for o in out]
    np.testing.assert_allclose(np.abs(slopes), np.sin(0.4), atol=1e-3)  # ±0.4 per image
    assert {np.sign(s) for s in slopes} == {-1.0, 1.0}


def test_rotate_without_degrees_is_mnistc_rotation() -> None:
    out = _shift({"name": "rotate"})
    deg = np.rad2deg(0.4)
    for img, got in zip(X[..., 0], out[..., 0], strict=True):
        err = min(np.abs(ndi.rotate(img, s * deg, reshape=False, order=1) - got).max()
                  for s in (-1, 1))
        assert err < 1e-5
    assert np.array_equal(_shift({"name": "rotate", "severity": 2}), out)
    with pytest.raises(JtlError, match="random"):
        _shift({"name": "rotate", "random": True})
    with pytest.raises(JtlError, match="not both"):
        _shift({"name": "rotate", "degrees": 10, "severity": 2})


def _bbox(img: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(img > 0.2)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_scale_shrinks_the_bounding_box() -> None:
    out = _shift("scale")
    for img, got in zip(X[..., 0], out[..., 0], strict=True):
        (h0, w0), (h1, w1) = _bbox(img), _bbox(got)
        assert abs(h1 - 0.7 * h0) <= 2 and abs(w1 - 0.7 * w0) <= 2


def test_translate_moves_the_centre_of_mass_three_pixels() -> None:
    out = _shift("translate")
    coms = np.array([ndi.center_of_mass(o[..., 0]) for o in out])
    before = np.array([ndi.center_of_mass(o[..., 0]) for o in X])
    np.testing.assert_allclose(np.abs(coms - before), 3.0, atol=0.05)
    assert len({tuple(np.sign(d)) for d in coms - before}) > 1


def test_brightness_adds_half_to_grey_images() -> None:
    out = _shift("brightness")
    np.testing.assert_allclose(out, np.clip(X + 0.5, 0, 1), atol=1e-6)
    assert out.mean() > X.mean() + 0.3


def test_stripe_inverts_the_outer_quarters() -> None:
    out = _shift("stripe")
    np.testing.assert_allclose(out[:, :, :7], 1 - X[:, :, :7])
    np.testing.assert_allclose(out[:, :, 21:], 1 - X[:, :, 21:])
    assert np.array_equal(out[:, :, 7:21], X[:, :, 7:21])


def test_fog_adds_a_smooth_field() -> None:
    out = _shift("fog").astype(np.float64)[..., 0]
    top = X.max(axis=(1, 2, 3))[:, None, None]
    added = out - X[..., 0] * top / (top + 3.0)  # what the fractal contributes (no clip here)
    assert (added.reshape(len(X), -1).std(axis=1) > 0.01).all()
    # Low-frequency: neighbouring pixels of the added field nearly agree.
    a, b = added[:, :, :-1].ravel(), added[:, :, 1:].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9
    assert (out[X[..., 0] == 0] > 0).mean() > 0.9  # the background is fogged


def test_spatter_adds_mud_blobs() -> None:
    out = _shift("spatter")[..., 0]
    bg = X[..., 0] == 0
    mud = bg & (out > 0)
    assert mud.any()
    # Background hit by mud takes its colour 63/255 at mask strength >= 0.8.
    assert ((out[mud] >= 0.8 * 63 / 255 - 1e-6) & (out[mud] <= 63 / 255 + 1e-6)).all()
    labels, count = ndi.label(mud)
    assert count and np.bincount(labels.ravel())[1:].mean() > 3  # blobs, not pixels


def test_dotted_line_adds_dashes() -> None:
    out = _shift("dotted_line")[..., 0]
    diff = out - X[..., 0]
    assert (diff >= -1e-6).all()
    off = (np.arange(28) // 2) % 2 == 0
    assert np.abs(diff[:, :, off]).max() < 1e-6 and np.abs(diff[:, :, 27]).max() < 1e-6
    assert (diff[:, :, ~off].reshape(len(X), -1).max(axis=1) > 0.5).all()


def test_zigzag_adds_a_zigzag_between_columns_two_and_25() -> None:
    out = _shift("zigzag")[..., 0]
    diff = out - X[..., 0]
    assert (diff >= -1e-6).all()
    assert np.abs(diff[:, :, :1]).max() < 1e-6 and np.abs(diff[:, :, 26:]).max() < 1e-6
    blank = _shift("zigzag", np.zeros((8, 28, 28, 1), np.float32))[..., 0]
    # Teeth: in the middle columns the drawn rows change direction several times.
    peak = blank[:, :, 4:22].argmax(axis=1)
    turns = (np.diff(np.sign(np.diff(peak, axis=1)), axis=1) != 0).sum(axis=1)
    assert (turns >= 3).all()


def test_canny_edges_are_thin_binary_outlines() -> None:
    out = _shift("canny_edges")[..., 0]
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert (out[:, 0] == 0).all() and (out[:, -1] == 0).all()  # no edges on the border
    fg = X[..., 0] > 0.5
    # Thin: fewer edge pixels than digit pixels, and no 2x2 block all edge.
    assert (out.sum(axis=(1, 2)) < fg.sum(axis=(1, 2))).all() and out.sum() > 0
    blocks = out[:, 1:, 1:] * out[:, :-1, 1:] * out[:, 1:, :-1] * out[:, :-1, :-1]
    assert blocks.sum() <= 0.02 * out.sum()
    # Outlines: edges lie where the image changes, next to the stroke.
    near = ndi.binary_dilation(fg, np.ones((1, 3, 3), bool), iterations=2)
    assert out[near].sum() >= 0.95 * out.sum()


def test_digits_domain_with_fog_builds_offline(ctx: LoadContext) -> None:
    """`target.shifts=[{name:fog}]` from the command line builds an MNIST-C style target."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "domain@target=sklearn_digits", "target.per_class=10", "target.test_fraction=0.05",
            "target.shifts=[{name:fog}]"])
    d = build_domain(cfg.target, (28, 28, 1), ctx, role="target")
    plain = build_domain({**cfg.target, "shifts": []}, (28, 28, 1), ctx, role="target")
    again = build_domain(cfg.target, (28, 28, 1), ctx, role="target")
    assert len(d.train) and len(d.val) and len(d.test)
    for split in ("train", "val", "test"):
        got, ref = getattr(d, split), getattr(plain, split)
        assert np.array_equal(got.y, ref.y) and got.x.shape == ref.x.shape
        assert got.x.dtype == np.float32 and got.x.min() >= 0 and got.x.max() <= 1
        assert not np.allclose(got.x, ref.x)
        assert np.array_equal(got.x, getattr(again, split).x)
