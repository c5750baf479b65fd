"""TENT trains only BatchNorm scale/shift, reads no label, and lowers the prediction entropy."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.methods.source_free import NORM_AFFINE, batch_norm_affine
from jtl.models import build_network
from jtl.train.data import train_groups
from tests.methods.source_free_kit import adapted, changed, params_at, rows, source_run

TENT = ["method=tent", "optim=adam", "optim.lr=1e-3"]


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return source_run(tmp_path_factory.mktemp("tent"))


def test_only_batch_norm_affine_parameters_change(src, tmp_path):
    """Every kernel and bias of the linear layers and the head is the source model's; BN
    scale and bias moved (by gradient), mean and var too (the step's batch statistics)."""
    s = adapted(src, tmp_path / "tent", *TENT)
    assert s["status"] == "completed" and s["source"] is None
    moved = changed(params_at(src)["params"], params_at(tmp_path / "tent")["params"])
    for path, differs in moved.items():
        assert differs == path.startswith("backbone/blocks/0/norm/"), path


def test_reads_no_label(src, tmp_path):
    """Permuting every target label (train, val and test) changes no parameter."""
    assert build_method({"name": "tent"}).uses == {"target/x"}
    adapted(src, tmp_path / "a", *TENT)
    adapted(src, tmp_path / "b", *TENT,
            "target.shifts=[invert,{name:permute_labels,seed:1}]")
    a, b = params_at(tmp_path / "a")["params"], params_at(tmp_path / "b")["params"]
    assert not any(changed(a, b).values())


def test_batches_hold_only_the_input_fields():
    """The trainer hands tent the target's input fields alone: reading a label would fail."""
    from jtl.domains import Split
    from jtl.domains.pp import Pipeline

    split = Split({"features": np.zeros((4, 3), np.float32), "label": np.arange(4)},
                  Pipeline("features"))
    dom = type("Dom", (), {"train": split})()
    data, _ = train_groups({"source": [], "target": [dom]}, build_method({"name": "tent"}).uses)
    assert set(data) == {"target"} and set(data["target"]) == {"features"}


def test_entropy_goes_down(src, tmp_path):
    """The mean entropy of the target predictions over the last steps is below that of the
    first steps (the loss it minimises, logged as train/target_entropy)."""
    adapted(src, tmp_path / "tent", *TENT, "optim.lr=1e-2")
    ent = [r["train/target_entropy"] for r in rows(tmp_path / "tent")
           if "train/target_entropy" in r]
    assert len(ent) >= 3 and ent[-1] < 0.9 * ent[0], ent


def test_a_network_without_batch_norm_is_refused():
    method = build_method({"name": "tent"})
    net = build_network({"name": "mlp", "input_shape": [6], "hidden": [5], "norm": "none"},
                        3, method, 0)
    graphdef, params = nnx.split(net)
    with pytest.raises(JtlError, match="no BatchNorm"):
        batch_norm_affine(graphdef, params.to_pure_dict(), NORM_AFFINE, "tent")
    net = build_network({"name": "mnist_cnn", "input_shape": [28, 28, 1]}, 3, method, 0)
    graphdef, params = nnx.split(net)
    with pytest.raises(JtlError, match="not a BatchNorm"):  # GroupNorm's norm/scale
        batch_norm_affine(graphdef, params.to_pure_dict(), NORM_AFFINE, "tent")
