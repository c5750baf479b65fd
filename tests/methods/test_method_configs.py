"""Every `conf/method/*.yaml` builds, states all of its method's hyper-parameters, and reads
exactly the arrays of its setting: only inductive methods read target labels."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from flax import nnx

from jtl.errors import JtlError
from jtl.methods import METHODS, build_method

CONF = Path(__file__).resolve().parents[2] / "conf" / "method"
YAMLS = sorted(CONF.glob("*.yaml"))
TRANSDUCTIVE = {"source/x", "source/y", "target/x"}
# Methods outside the transductive setting, and what they read.
READS = {
    "source_only": {"source/x", "source/y"},
    "target_only": {"target/x", "target/y"},  # inductive: the target's labels
    "bss": {"target/x", "target/y"},
    "multitask": {"source/x", "source/y", "target/x", "target/y"},
    "simclr": {"source/x"},  # unsupervised: no label at all
    "autoencoder": {"source/x"},
    "dap": {"source/x", "source/y"},  # zero-shot: seen classes' labels, through attributes
    "adabn": {"target/x"},  # source-free: target statistics only
    "bn_adapt": {"target/x"},
    "tent": {"target/x"},
    "t3a": {"target/x"},
    "shot": {"target/x", "target/index"},  # pseudo-labels looked up by example
    "self_training": TRANSDUCTIVE | {"target/index"},
    # domain generalization: several labeled sources (with their `domain`), no target at all
    "irm": {"source/x", "source/y"},
    "vrex": {"source/x", "source/y"},
    "group_dro": {"source/x", "source/y"},
    "mixup": {"source/x", "source/y"},
    **dict.fromkeys(("mldg", "fish", "rsc", "sagnet", "dg_coral", "dg_mmd", "dg_dann", "cdann"),
                    frozenset({"source/x", "source/y"})),
}


def load(path: Path) -> dict:
    """A method yaml; a preset (`defaults: [<method>, _self_]`) merged over its method's."""
    cfg = yaml.safe_load(path.read_text())
    bases = [d for d in cfg.pop("defaults", []) if d != "_self_"]
    for base in bases:
        cfg = {**load(CONF / f"{base}.yaml"), **cfg}
    return cfg


def is_preset(path: Path) -> bool:
    return "defaults" in yaml.safe_load(path.read_text())


def test_every_registered_method_has_a_yaml():
    assert {p.stem for p in YAMLS if not is_preset(p)} == set(METHODS.names())
    for p in filter(is_preset, YAMLS):  # a preset names a method and builds
        assert load(p)["name"] in METHODS.names() and build_method(load(p))


@pytest.mark.parametrize("path", [p for p in YAMLS if not is_preset(p)], ids=lambda p: p.stem)
def test_yaml_builds_and_matches_the_dataclass(path):
    cfg = load(path)
    assert cfg["name"] == path.stem
    method = build_method(cfg)
    cls = type(method)
    # all hyper-parameters live in the yaml, and the dataclass defaults agree with it
    assert set(cfg) - {"name"} == {f.name for f in dataclasses.fields(cls)}
    assert method == cls()
    assert method.uses == READS.get(path.stem, TRANSDUCTIVE)
    # extra modules build at the yaml's real widths (abstractly: no parameters allocated)
    modules = nnx.eval_shape(lambda: method.modules(64, 10, nnx.Rngs(0)))
    assert all(isinstance(m, nnx.Module) for m in modules.values())


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_each_key_overridable(path):
    cfg = load(path)
    for key, value in cfg.items():
        if key == "name":
            continue
        if isinstance(value, bool):
            new = not value
        elif isinstance(value, str):
            new = {"schedule": "constant", "layer": "features", "disc_norm": "none",
                   "attributes": str(CONF.parent / "attributes" / f"{value}.yaml")}[key]
        elif value is None:
            new = {"seen": (1, 2, 3, 4, 5, 6, 8, 9),  # stored as a tuple (hashable)
                   "relabel_every": 5, "label_smoothing": 0.1, "filter_k": 5}[key]
        else:
            new = value / 2 if key == "threshold" else type(value)(value * 2)
        assert getattr(build_method({**cfg, key: new}), key) == new


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "dann", "schedule": "linear"},
        {"name": "cdan", "schedule": "step"},
        {"name": "self_training", "threshold": 0.0},
        {"name": "mmd", "kernel_num": 0},
        {"name": "coral", "wieght": 1.0},
        {"name": "domain_confusion", "disc_hidden": 0},
        {"name": "coral", "layer": "fc7"},
        {"name": "mcc", "temperature": 0.0},
        {"name": "mdd", "margin": -1.0},
        {"name": "mdd", "schedule": "linear"},
    ],
)
def test_bad_values_are_user_errors(bad):
    with pytest.raises(JtlError):
        build_method(bad)
