"""DomainBed's ColoredMNIST / RotatedMNIST environments (jtl/domains/_domainbed_mnist.py).

The construction is checked on the real 70,000 images (read straight from the IDX files, built
once per session: ~2 s); the loaders' wiring (mnist's loader, `env`, the test hold-out, errors)
on the small fake MNIST files of conftest.py.

The reference digests below are DomainBed's own code (`MultipleEnvironmentMNIST`,
`ColoredMNIST.color_dataset`, `RotatedMNIST.rotate_dataset` of commit 7df6f06, with the
interpolation as named) run with torch 2.13.0 (CPU), torchvision 0.28.0 and Pillow 13.0.0 on
the same offline files: sha256 (first 16 hex digits) of each environment's float32 images
(N, 28, 28, C) and int64 labels.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import PIL
import pytest
from domain_testkit import COMMON, FAKE_MNIST
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from jtl import schema
from jtl.domains import _domainbed_mnist as dm
from jtl.domains._builders import read_idx
from jtl.domains._validate import to_unit
from jtl.domains.base import LoadContext, build_domain
from jtl.errors import JtlError

N = 70_000
COLORED_REF = {  # seed -> [(size, images, labels)] per environment
    0: [(23334, "afcab889778f43fd", "2f91ee1eb05841db"),
        (23333, "0da08f3408cbe263", "c58acced06a67836"),
        (23333, "43f0cc7651b177f5", "732cc3dbcddb81a4")],
    12345: [(23334, "b2ab1831f8a28ce7", "d2b371457c19bacb"),
            (23333, "f3f25cc0ef00a7a8", "cb514b772d1c942b"),
            (23333, "56b3d17a7f3f579e", "1f292216402dd0a2")],
}
# RotatedMNIST, seed 0: the first 2,000 images of each environment, and all its labels.
ROTATED_REF = {
    "bicubic": ["35a3a24b29eb2244", "9b38976eef3a0a2c", "93157972512c7ce6", "92d310c700ded580",
                "6b4ace5e0a25e492", "fa97a51657738c2d"],
    "bilinear": ["35a3a24b29eb2244", "f6e36f5a9cd12709", "4995d9fd64723f06",
                 "d1d3bdc08fb24d5f", "43f6e872424029c6", "9c60b30278f962c0"],
}
ROTATED_LABELS = ["73549f3052924e3e", "76d8142067ecb7c3", "71f3b3d3a3273855",
                  "15e05e085f1fb61f", "543d8b3d43f4563c", "deb7bc250c93657f"]


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def within_binomial(hits: int, n: int, p: float, z: float = 4.5) -> bool:
    """|hits/n - p| within z standard errors of a binomial(n, p) rate."""
    return abs(hits / n - p) <= z * math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="session")
def mnist70k(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    d = data_dir / "mnist"
    x = np.concatenate([read_idx(d / "train-images-idx3-ubyte.gz", 3),
                        read_idx(d / "t10k-images-idx3-ubyte.gz", 3)])
    y = np.concatenate([read_idx(d / "train-labels-idx1-ubyte.gz", 1),
                        read_idx(d / "t10k-labels-idx1-ubyte.gz", 1)]).astype(np.int64)
    return x, y


@pytest.fixture(scope="session")
def colored(mnist70k: tuple[np.ndarray, np.ndarray]) -> list:
    return dm.colored_environments(*mnist70k, seed=0)


def test_torch_cpu_stream_replays_torch() -> None:
    """torch 2.13: manual_seed(0); randperm(10); rand(5)."""
    s = dm.TorchCpuStream(0)
    assert s.randperm(10).tolist() == [4, 1, 7, 5, 3, 9, 0, 8, 6, 2]
    np.testing.assert_allclose(s.rand(5), [0.6323063, 0.34889346, 0.4017173, 0.02232575,
                                           0.16885895], rtol=1e-6)
    assert dm.seed_hash("ColoredMNIST", "ERM", [0], 0, 0) == dm.seed_hash(
        "ColoredMNIST", "ERM", [0], 0, 0) < 2**31


def test_shuffle_once_and_deal_in_turn() -> None:
    """Every image in exactly one environment; sizes 70000/3 and 70000/6, larger first."""
    idx = np.arange(N)
    for n_envs in (3, 6):
        envs = dm.deal(idx, idx, n_envs, dm.TorchCpuStream(0))
        assert [len(e[0]) for e in envs] == [len(range(i, N, n_envs)) for i in range(n_envs)]
        assert np.array_equal(np.sort(np.concatenate([e[0] for e in envs])), idx)
        assert not np.array_equal(envs[0][0][:100], idx[:300:n_envs][:100])  # shuffled
    assert [len(range(i, N, 3)) for i in range(3)] == [23334, 23333, 23333]
    assert [len(range(i, N, 6)) for i in range(6)] == [11667] * 4 + [11666] * 2


@pytest.mark.parametrize("seed", sorted(COLORED_REF))
def test_colored_is_domainbeds_draw_for_draw(mnist70k: tuple, colored: list, seed: int
                                             ) -> None:
    envs = colored if seed == 0 else dm.colored_environments(*mnist70k, seed=seed)
    got = [(len(y), digest(to_unit(x, (0, 255))), digest(y)) for x, y in envs]
    assert got == COLORED_REF[seed]
    only = dm.colored_environments(*mnist70k, seed=seed, only=2)
    assert only[:2] == [None, None] and digest(only[2][1]) == COLORED_REF[seed][2][2]


def test_colour_and_label_rates(mnist70k: tuple, colored: list) -> None:
    """Per environment: label == [digit < 5] at 0.75, colour == label at 1 - e, colour ==
    [digit < 5] at 0.75 (1 - e) + 0.25 e, the digit in exactly the colour's channel."""
    dealt = dm.deal(*mnist70k, 3, dm.TorchCpuStream(0))
    for (x, label), (im, d), e in zip(colored, dealt, dm.COLOR_FLIP, strict=True):
        assert x.shape == (len(label), 28, 28, 2) and x.dtype == np.uint8
        lit = x.reshape(len(x), -1, 2).max(axis=1) > 0
        assert (lit.sum(axis=1) == 1).all()  # one channel holds the digit, the other is zero
        colour = lit[:, 1].astype(np.int64)
        n, small = len(label), (d < 5).astype(np.int64)
        assert within_binomial(int((label == small).sum()), n, 1 - dm.LABEL_FLIP)
        assert within_binomial(int((colour == label).sum()), n, 1 - e)
        assert within_binomial(int((colour == small).sum()), n, 0.75 * (1 - e) + 0.25 * e)
        assert set(np.unique(label)) == {0, 1}
        assert np.array_equal(x[np.arange(n), :, :, colour], im)  # the digit, unchanged


@pytest.mark.skipif(not PIL.__version__.startswith("13."),
                    reason=f"reference pixels made with Pillow 13.0.0, this is {PIL.__version__}")
@pytest.mark.parametrize("interpolation", sorted(ROTATED_REF))
def test_rotated_is_domainbeds(mnist70k: tuple, interpolation: str) -> None:
    envs = dm.deal(*mnist70k, 6, dm.TorchCpuStream(0))
    got = [digest(to_unit(dm.rotate(x[:2000], a, interpolation)[..., None], (0, 255)))
           for (x, _), a in zip(envs, dm.ANGLES, strict=True)]
    assert got == ROTATED_REF[interpolation]
    assert [digest(y) for _, y in envs] == ROTATED_LABELS


def test_rotation_of_a_known_image() -> None:
    """A blob right of the centre turns counter-clockwise by the angle (up on screen), about
    the centre, keeping its mass; 0 degrees is the image itself."""
    im = np.zeros((1, 28, 28), np.uint8)
    im[0, 13:16, 21:24] = 255  # centred on pixel (14, 22): 8 right of the centre (14, 14)
    assert np.array_equal(dm.rotate(im, 0), im)
    rows, cols = np.mgrid[0:28, 0:28] + 0.5  # pixel centres; PIL rotates about (14.0, 14.0)
    for angle in (15, 30, 45, 60, 75):
        out = dm.rotate(im, angle).astype(np.float64)[0]
        m = out.sum()
        r, c = (out * rows).sum() / m - 14.0, (out * cols).sum() / m - 14.0
        r0, c0 = 14.5 - 14.0, 22.5 - 14.0
        turned = math.degrees(math.atan2(-r, c) - math.atan2(-r0, c0))
        assert abs(turned - angle) < 1.0, (angle, turned)
        assert abs(math.hypot(r, c) - math.hypot(r0, c0)) < 0.3
        assert abs(m / (9 * 255) - 1) < 0.05


def _cfg(name: str, **kw: object) -> dict:
    return {"name": name, "backend": "offline", **COMMON, "test_fraction": 0.2, **kw}


def test_loaders_build_one_environment(ctx: LoadContext, fake_mnist_sums: None) -> None:
    """Through mnist's loader (fake files: 400 images): env by index or name, no test split
    of its own (test_fraction holds one out), 2 channels / 1 channel."""
    n = FAKE_MNIST["train"] + FAKE_MNIST["t10k"]
    d = build_domain(_cfg("colored_mnist", env="-90%"), (28, 28, 2), ctx, role="target")
    size = len(range(2, n, 3))
    assert len(d.test) == round(0.2 * size) and len(d.train) + len(d.val) + len(d.test) == size
    assert d.num_classes == 2 and d.train.x.shape[1:] == (28, 28, 2)
    same = build_domain(_cfg("colored_mnist", env=2), (28, 28, 2), ctx)
    assert np.array_equal(same.train.x, d.train.x) and np.array_equal(same.test.y, d.test.y)
    other = build_domain(_cfg("colored_mnist", env=2, seed=1), (28, 28, 2), ctx)
    assert not np.array_equal(other.train.x, d.train.x)
    r = build_domain(_cfg("rotated_mnist", env=45), (28, 28, 1), ctx)
    assert np.array_equal(r.train.x, build_domain(_cfg("rotated_mnist", env=3), (28, 28, 1),
                                                  ctx).train.x)
    assert np.array_equal(r.train.x, build_domain(_cfg("rotated_mnist", env="45"),
                                                  (28, 28, 1), ctx).train.x)
    assert r.num_classes == 10 and len(r.train) + len(r.val) + len(r.test) == len(
        range(3, n, 6))


@pytest.mark.parametrize(("name", "extra", "needle"), [
    ("colored_mnist", {"env": 3}, "env=3: there are 3 environments; give an index 0..2"),
    ("colored_mnist", {"env": "+70%"}, "env='+70%' is no environment"),
    ("colored_mnist", {"env": 1.5}, "target.env=1.5"),
    ("rotated_mnist", {"env": 90}, "env=90: there are 6 environments"),
    ("rotated_mnist", {"env": "90"}, "'0', '15', '30', '45', '60', '75'"),
    ("rotated_mnist", {"seed": -1}, "seed=-1: an integer in [0, 2**32)"),
    ("rotated_mnist", {"interpolation": "nearest"}, "target.interpolation='nearest'"),
])
def test_bad_keys_are_one_line(ctx: LoadContext, fake_mnist_sums: None, name: str,
                               extra: dict, needle: str) -> None:
    with pytest.raises(JtlError) as e:
        build_domain(_cfg(name, **extra), (28, 28, 1), ctx, role="target")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_composed_from_the_command_line() -> None:
    GlobalHydra.instance().clear()
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "domain@source=colored_mnist", "domain@target=colored_mnist", "target.env=-90%",
            "model=mnist_cnn"])
    GlobalHydra.instance().clear()
    assert (cfg.source.env, cfg.target.env, cfg.target.test_fraction) == (0, "-90%", 0.2)
    schema.validate_domain(cfg.target, "target")
