"""DomainBed's MNIST_CNN as a jtl backbone (jtl/models/mnist_cnn.py), and a short run with it
on colored_mnist environments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl.domains import _domainbed_mnist as domainbed_mnist
from jtl.domains._builders import read_idx
from jtl.models.base import build_network
from jtl.models.mnist_cnn import MnistCnn
from tests.conftest import compose_cfg

DATA = Path(__file__).resolve().parents[2] / "../shared/data"


def n_params(module: nnx.Module) -> int:
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(module, nnx.Param)))


def domainbed_count(cin: int) -> int:
    """DomainBed's MNIST_CNN by hand: Conv2d(cin, 64, 3), Conv2d(64, 128, 3, stride 2),
    Conv2d(128, 128, 3) twice (weights + biases), GroupNorm(8, c) affine (weight + bias)."""
    convs = [(cin, 64), (64, 128), (128, 128), (128, 128)]
    return sum(9 * a * b + b for a, b in convs) + sum(2 * b for _, b in convs)


@pytest.fixture(scope="module")
def cnn2() -> MnistCnn:
    return MnistCnn((28, 28, 2), nnx.Rngs(0))


def test_shapes_and_parameter_count(cnn2: MnistCnn) -> None:
    for cin in (2, 1):
        m = cnn2 if cin == 2 else MnistCnn((28, 28, cin), nnx.Rngs(0))
        x = jnp.ones((3, 28, 28, cin))
        sides = []
        for block in m.blocks[:4]:
            x = block(x)
            sides.append(x.shape[1:])
        assert sides == [(28, 28, 64), (14, 14, 128), (14, 14, 128), (14, 14, 128)]  # padding 1
        assert m(jnp.ones((3, 28, 28, cin))).shape == (3, 128) and m.feature_dim == 128
        assert n_params(m) == domainbed_count(cin)
    assert domainbed_count(2) == 371_136  # torch's sum(p.numel()) for MNIST_CNN((2, 28, 28))
    net = build_network({"name": "mnist_cnn", "input_shape": [28, 28, 2]}, 2,
                        type("NoModules", (), {"modules": lambda *a: {}})(), seed=0)
    assert n_params(net) == 371_136 + 128 * 2 + 2  # + the linear head


def test_torch_initialisation_and_groupnorm(cnn2: MnistCnn) -> None:
    """Conv weights and biases uniform in +-1/sqrt(fan_in) (torch's Conv2d default); GroupNorm
    starts at scale 1, bias 0, eps 1e-5, 8 groups."""
    m = cnn2
    for block, cin in zip(m.blocks[:4], (2, 64, 128, 128), strict=True):
        bound = 1 / math.sqrt(9 * cin)
        for p in (block.conv.kernel.value, block.conv.bias.value):
            assert float(jnp.abs(p).max()) <= bound and float(jnp.abs(p).max()) > 0.8 * bound
        k = block.conv.kernel.value
        assert abs(float(k.std()) - bound / math.sqrt(3)) < 0.1 * bound
        assert block.norm.num_groups == 8 and block.norm.epsilon == 1e-5
        assert (block.norm.scale.value == 1).all() and (block.norm.bias.value == 0).all()


def test_blocks_for_freeze_and_cut() -> None:
    m = MnistCnn((28, 28, 1), nnx.Rngs(0))
    assert len(m.blocks) == 5
    m.cut(2, (28, 28, 1))
    assert m.feature_dim == 14 * 14 * 128


def test_short_colored_mnist_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The brief's command on a small budget: +90% -> -90%, MNIST_CNN, a few dozen steps. The
    images come straight from the IDX files (the TFDS preparation is the mnist tests'), a
    tenth of the 70,000 (the construction's counts are tests/domains/test_domainbed_mnist.py's)."""
    from jtl.train import train_and_evaluate

    d = DATA / "mnist"
    x = np.concatenate([read_idx(d / "train-images-idx3-ubyte.gz", 3),
                        read_idx(d / "t10k-images-idx3-ubyte.gz", 3)])
    y = np.concatenate([read_idx(d / "train-labels-idx1-ubyte.gz", 1),
                        read_idx(d / "t10k-labels-idx1-ubyte.gz", 1)]).astype(np.int64)
    monkeypatch.setattr(domainbed_mnist, "mnist_70k", lambda cfg, ctx: (x[:7000], y[:7000]))
    small = ["test_fraction=0.01", "val_fraction=0.01", "max_train=512"]
    cfg = compose_cfg([
        "domain@source=colored_mnist", "source.env=0", "domain@target=colored_mnist",
        "target.env=2", "model=mnist_cnn", "model.input_shape=[28,28,2]", "trainer=debug",
        "trainer.steps=16", "trainer.eval_every=16", "trainer.checkpoint_every=16",
        "trainer.log_every=16", "trainer.batch_size=16", "trainer.progress=false",
        "trainer.tensorboard=false", *(f"{r}.{k}" for r in ("source", "target") for k in small)])
    s = train_and_evaluate(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run/summary.json").read_text())["status"] == "completed"
    assert (s["status"], s["step"], s["model"], s["source"], s["target"]) == (
        "completed", 16, "mnist_cnn", "colored_mnist", "colored_mnist")
    assert s["num_params"] == 371_136 + 258 and s["num_classes"] == 2
    for key in ("source/test/accuracy", "target/test/accuracy"):
        assert 0.0 <= s[key] <= 1.0
