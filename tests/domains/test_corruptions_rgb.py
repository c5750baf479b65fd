"""ImageNet-C style corruptions (jtl/domains/corruptions_rgb.py): each is deterministic from its
Generator, uint8 in -> uint8 out of the same shape, changes the image, and the ones whose
tables only strengthen grow with severity; the `imagenet_c` shift wires them into domains."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jtl.domains.base import Split
from jtl.domains.corruptions_rgb import CORRUPTIONS_RGB, brightness, saturate
from jtl.domains.shifts import apply_shifts, parse_shift
from jtl.errors import JtlError

# Severity tables that only strengthen: more noise, wider blur, a larger zoom / fog / V offset,
# lower contrast / JPEG quality, coarser pixels; measured on a smooth image with edges (on
# fine periodic texture a disk blur's negative lobes or pixel blocks aligned with the pattern
# can reverse a step), pixelate on the textured one (blocks aligned with edges lose nothing).
# saturate is not monotone by design (1-2 desaturate, 3-5 oversaturate).
MONOTONE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur",
            "defocus_blur", "motion_blur", "zoom_blur", "fog", "brightness", "contrast",
            "jpeg_compression", "pixelate")


def images(n: int = 3, side: int = 64) -> np.ndarray:
    """Textured colour images: a colour gradient, a checkerboard and noise."""
    rng = np.random.default_rng(7)
    r, c = np.mgrid[:side, :side] / side
    base = np.stack([r, c, 1 - r], -1)
    board = (((np.arange(side)[:, None] // 3) + (np.arange(side)[None] // 3)) % 2)[..., None]
    x = 0.5 * base + 0.3 * board + 0.2 * rng.random((n, side, side, 3))
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS_RGB))
def test_deterministic_range_preserving_and_changes_the_image(name):
    fn, x = CORRUPTIONS_RGB[name], images()
    a = fn(x, np.random.default_rng(0), 3)
    b = fn(x, np.random.default_rng(0), 3)
    assert a.dtype == np.uint8 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - x).mean() > 1.0  # a visible change, not rounding
    x_before = x.copy()
    fn(x, np.random.default_rng(1), 5)
    np.testing.assert_array_equal(x, x_before)  # the input is not modified


def smooth(n: int = 2, side: int = 96) -> np.ndarray:
    """A colour gradient with large squares (12 pixels) and a little noise."""
    rng = np.random.default_rng(7)
    r, c = np.mgrid[:side, :side] / side
    board = (((np.arange(side)[:, None] // 12) + (np.arange(side)[None] // 12)) % 2)[..., None]
    x = 0.5 * np.stack([r, c, 1 - r], -1) + 0.4 * board + 0.1 * rng.random((n, side, side, 3))
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("name", MONOTONE)
def test_severity_monotone(name):
    x = images() if name == "pixelate" else smooth()
    change = [np.abs(CORRUPTIONS_RGB[name](x, np.random.default_rng(0), s).astype(float) - x)
              .mean() for s in range(1, 6)]
    assert all(b > a for a, b in itertools.pairwise(change)), change


def test_hsv_closed_forms_match_a_per_pixel_hsv_round_trip():
    """brightness / saturate equal colorsys's HSV round trip (skimage's formulas), pixel by
    pixel, including grey and black pixels."""
    import colorsys

    x = images(1, 8)
    x[0, 0, 0] = (0, 0, 0)
    x[0, 0, 1] = (90, 90, 90)
    f = x[0].astype(float) / 255
    for severity, (fn, edit) in enumerate([(brightness, lambda h, s, v: (h, s, min(v + .3, 1))),
                                           (saturate, lambda h, s, v: (h, min(s * 5 + .1, 1), v))]):
        sev = 3 if severity == 0 else 4
        want = np.array([[colorsys.hsv_to_rgb(*edit(*colorsys.rgb_to_hsv(*p))) for p in row]
                         for row in f])
        got = fn(x, np.random.default_rng(0), sev)[0].astype(float) / 255
        np.testing.assert_allclose(got, want, atol=1 / 255 + 1e-9)


def test_bad_severity_and_dtype():
    x = images(1, 16)
    with pytest.raises(JtlError, match="1-5"):
        CORRUPTIONS_RGB["contrast"](x, np.random.default_rng(0), 6)
    with pytest.raises(JtlError, match="uint8"):
        CORRUPTIONS_RGB["contrast"](x.astype(np.float32), np.random.default_rng(0), 1)
    with pytest.raises(JtlError, match="RGB"):
        saturate(x[..., :1], np.random.default_rng(0), 1)


def test_imagenet_c_shift_on_float_splits():
    """The shift: float [0, 1] splits in, float [0, 1] out on the 8-bit grid, train/val/test
    drawn from their own streams, deterministic from the seed; names checked."""
    x = images(4, 32).astype(np.float32) / 255
    y = np.arange(4) % 2
    s = Split.of(x, y)
    spec = [{"name": "imagenet_c", "corruption": "gaussian_noise", "severity": 2}]
    tr, _, te, _ = apply_shifts(spec, s, s, s, 2, seed=0)
    tr2, *_ = apply_shifts(spec, s, s, s, 2, seed=0)
    assert tr.x.dtype == np.float32 and tr.x.min() >= 0 and tr.x.max() <= 1
    np.testing.assert_allclose(tr.x * 255, np.round(tr.x * 255), atol=1e-3)
    np.testing.assert_array_equal(tr.x, tr2.x)
    assert not np.array_equal(tr.x, te.x)  # each split its own noise
    np.testing.assert_array_equal(tr.y, y)
    with pytest.raises(JtlError, match="unknown corruption"):
        apply_shifts([{"name": "imagenet_c", "corruption": "frost", "severity": 1}],
                     s, s, s, 2, seed=0)
    with pytest.raises(JtlError, match="missing"):
        parse_shift({"name": "imagenet_c", "corruption": "fog"})
