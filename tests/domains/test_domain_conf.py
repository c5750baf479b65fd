"""conf/domain/*.yaml: plain group files that name a registered loader and carry the keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from jtl.domains.base import DOMAINS, LoadContext, build_domain

CONF = Path(__file__).resolve().parents[2] / "conf" / "domain"
NAMES = ["mnist", "usps", "sklearn_digits", "tfds", "npz"]


@pytest.mark.parametrize("name", NAMES)
def test_domain_yaml(name: str) -> None:
    path = CONF / f"{name}.yaml"
    assert "@package" not in path.read_text()  # used as domain@source / domain@target
    cfg = OmegaConf.load(path)
    assert cfg.name == name and name in DOMAINS.names()
    for key in ("shifts", "per_class", "max_train", "val_fraction", "split_seed", "value_range"):
        assert key in cfg
    assert list(cfg.shifts) == [] and cfg.per_class is None and cfg.value_range is None


def _compose(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF.parent), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_hydra_config_builds(ctx: LoadContext) -> None:
    """As the CLI composes it: a group file under a package, overridden from the command line."""
    cfg = _compose("domain@target=sklearn_digits", "target.per_class=3",
                   "target.shifts=[invert,{name:rotate,degrees:10}]", "target.value_range=[0,16]")
    d = build_domain(cfg.target, (28, 28, 1), ctx, role="target")
    assert len(d.train) == 30 and len(d.val) == 0 and d.train.x.shape[1:] == (28, 28, 1)


def test_hydra_loader_keys() -> None:
    cfg = _compose("domain@source=tfds", "source.dataset=cifar10", "source.test_split=null",
                   "domain@target=npz", "target.path=/data/mine.npz",
                   "target.value_range=[0,65535]")
    assert cfg.source.dataset == "cifar10" and cfg.source.test_split is None
    assert cfg.target.path == "/data/mine.npz" and cfg.target.test_fraction == 0.2
    assert list(cfg.target.value_range) == [0, 65535]
    assert _compose("source.backend=tfds").source.backend == "tfds"  # mnist's own key
