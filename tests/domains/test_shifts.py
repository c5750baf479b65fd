"""Each shift on small synthetic splits, plus parsing, composition and config forms."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from jtl.domains.base import Split
from jtl.domains.shifts import SHIFTS, apply_shifts, parse_shift
from jtl.errors import JtlError

K = 10


def _split(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    return Split.of(rng.random((n, 8, 8, 1), dtype=np.float32), np.arange(n, dtype=np.int32) % K)


def _apply(shifts: list, seed: int = 0) -> tuple[Split, Split, Split, int]:
    return apply_shifts(shifts, _split(200, 1), _split(50, 2), _split(60, 3), K, seed=seed)


def _originals() -> tuple[Split, Split, Split]:
    return _split(200, 1), _split(50, 2), _split(60, 3)


def test_no_shift_is_identity() -> None:
    for got, want in zip(_apply([])[:3], _originals(), strict=True):
        assert np.array_equal(got.x, want.x) and np.array_equal(got.y, want.y)


def test_invert_twice_is_identity() -> None:
    once = _apply(["invert"])
    for got, want in zip(once[:3], _originals(), strict=True):
        np.testing.assert_allclose(got.x, 1.0 - want.x)
    for got, want in zip(_apply(["invert", "invert"])[:3], _originals(), strict=True):
        np.testing.assert_allclose(got.x, want.x, atol=1e-6)
        assert np.array_equal(got.y, want.y)


def test_rotate_fixed_angle() -> None:
    zero = _apply([{"name": "rotate", "degrees": 0}])
    for got, want in zip(zero[:3], _originals(), strict=True):
        assert np.array_equal(got.x, want.x)
    quarter = _apply([{"name": "rotate", "degrees": 90}])
    for got, want in zip(quarter[:3], _originals(), strict=True):
        # Counter-clockwise, like np.rot90; exact on a square image.
        np.testing.assert_allclose(got.x, np.rot90(want.x, 1, axes=(1, 2)), atol=1e-6)
        assert got.x.dtype == np.float32 and np.array_equal(got.y, want.y)


def test_rotate_random_is_seeded_and_per_image() -> None:
    spec = [{"name": "rotate", "degrees": 45, "random": True}]
    a, b, c = _apply(spec), _apply(spec), _apply(spec, seed=1)
    assert np.array_equal(a[0].x, b[0].x) and not np.array_equal(a[0].x, c[0].x)
    # Two copies of one image get different angles.
    img = _split(1, 9).x
    s = Split.of(np.concatenate([img, img]), np.zeros(2, np.int32))
    out = apply_shifts(spec, s, s, s, K, seed=0)[0]
    assert not np.allclose(out.x[0], out.x[1])
    assert out.x.min() >= 0.0 and out.x.max() <= 1.0


def test_noise() -> None:
    same = _apply([{"name": "noise", "std": 0.0}])
    assert np.array_equal(same[0].x, _originals()[0].x)
    a, b = _apply([{"name": "noise", "std": 0.3}]), _apply([{"name": "noise", "std": 0.3}])
    assert np.array_equal(a[0].x, b[0].x)  # seeded
    assert not np.allclose(a[0].x, _originals()[0].x)
    for s in a[:3]:
        assert s.x.min() >= 0.0 and s.x.max() <= 1.0 and s.x.dtype == np.float32
    # Each split draws its own noise (val and train do not share a pattern).
    assert not np.allclose(a[0].x[:50] - _originals()[0].x[:50], a[1].x - _originals()[1].x)
    with pytest.raises(JtlError, match="std"):
        _apply([{"name": "noise", "std": -1}])


def test_label_shift_sets_train_class_proportions() -> None:
    w = [4, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    train, val, test, k = apply_shifts([{"name": "label_shift", "weights": w}],
                                       _split(1000, 1), _split(50, 2), _split(60, 3), K, seed=0)
    # 100 per class available; class 0 (weight 4) is the scarcest relative to its weight.
    assert np.bincount(train.y, minlength=K).tolist() == [100] + [25] * 8 + [0]
    assert k == K
    # Subsampled, not altered: each kept example is an original one.
    orig = _split(1000, 1)
    rows = {x.tobytes(): y for x, y in zip(orig.x, orig.y, strict=True)}
    assert all(rows[x.tobytes()] == y for x, y in zip(train.x, train.y, strict=True))
    # Train only.
    assert len(val) == 50 and len(test) == 60
    a = apply_shifts([{"name": "label_shift", "weights": w}], orig, val, test, K, seed=0)[0]
    assert np.array_equal(a.x, train.x)  # deterministic


@pytest.mark.parametrize("w", [[1] * 9, [1] * 9 + [-1], [0] * 10])
def test_label_shift_rejects_bad_weights(w: list) -> None:
    with pytest.raises(JtlError, match="weights"):
        _apply([{"name": "label_shift", "weights": w}])


def test_permute_labels_with_perm_applies_to_all_splits() -> None:
    perm = [3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    out = _apply([{"name": "permute_labels", "perm": perm}])
    for got, want in zip(out[:3], _originals(), strict=True):
        assert np.array_equal(got.y, np.asarray(perm)[want.y])
        assert np.array_equal(got.x, want.x)


def test_permute_labels_with_seed_is_a_derangement() -> None:
    train, val, test, _ = _apply([{"name": "permute_labels", "seed": 7}])
    orig = _originals()
    mapping = dict(zip(orig[0].y.tolist(), train.y.tolist(), strict=True))
    assert sorted(mapping) == sorted(mapping.values()) == list(range(K))  # bijection
    assert all(mapping[c] != c for c in range(K))  # no class keeps its id
    for got, want in zip((val, test), orig[1:], strict=True):  # one permutation everywhere
        assert [mapping[c] for c in want.y.tolist()] == got.y.tolist()


@pytest.mark.parametrize("spec", [{"name": "permute_labels"},
                                  {"name": "permute_labels", "perm": [0] * 10},
                                  {"name": "permute_labels", "perm": list(range(10)), "seed": 1}])
def test_permute_labels_rejects_bad_params(spec: dict) -> None:
    with pytest.raises(JtlError, match="permute_labels"):
        _apply([spec])


def test_shifts_compose_in_order() -> None:
    p = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    q = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    out = _apply([{"name": "permute_labels", "perm": p}, {"name": "permute_labels", "perm": q}])
    assert np.array_equal(out[0].y, np.asarray(q)[np.asarray(p)[_originals()[0].y]])


def test_unknown_shift_and_params() -> None:
    with pytest.raises(JtlError) as e:
        _apply(["blur"])
    assert all(name in str(e.value) for name in SHIFTS)
    with pytest.raises(JtlError, match="degrees"):
        _apply([{"name": "rotate", "angle": 30}])
    with pytest.raises(JtlError, match="name"):
        parse_shift(42)


def test_omegaconf_shift_lists() -> None:
    """Shifts arrive from Hydra as ListConfig/DictConfig."""
    cfg = OmegaConf.create({"shifts": ["invert", {"name": "label_shift", "weights": [1] * 10},
                                       {"name": "permute_labels", "perm": list(range(10))}]})
    train = _apply(cfg.shifts)[0]
    np.testing.assert_allclose(train.x, 1.0 - _originals()[0].x)
