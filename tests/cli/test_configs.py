"""Every yaml under conf/ composes, and every experiment accepts every method."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from jtl.methods import build_method
from tests.conftest import CONF, compose_cfg

GROUPS = {g.name: sorted(p.stem for p in g.glob("*.yaml"))
          for g in CONF.iterdir() if g.is_dir()}
EXPERIMENTS = GROUPS.get("experiment", [])


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_files_are_override_only_and_compose(experiment):
    text = (CONF / "experiment" / f"{experiment}.yaml").read_text()
    assert text.startswith("# @package _global_"), "experiment files are override-only"
    cfg = compose_cfg([f"experiment={experiment}"])
    assert (cfg.source is None or cfg.source.name) and cfg.target.name and cfg.model.name


@pytest.mark.parametrize("method", GROUPS["method"])
def test_each_method_composes_on_the_digits_experiment(method):
    cfg = compose_cfg(["experiment=digits_m2u", f"method={method}"])
    assert build_method(cfg.method).__class__.__name__


# Groups that set keys elsewhere (`# @package _global_`) or are read by name, not composed.
NOT_A_KEY = ("experiment", "method", "domain", "measure", "launcher", "direction", "attributes",
             "hydra")


@pytest.mark.parametrize(("group", "option"), [
    (g, o) for g, opts in GROUPS.items() if g not in NOT_A_KEY for o in opts])
def test_every_group_option_composes(group, option):
    cfg = compose_cfg([f"{group}={option}"])
    assert cfg[group]


@pytest.mark.parametrize("direction", GROUPS.get("direction", []))
def test_direction_options_set_a_source_target_pair(direction):
    cfg = compose_cfg([f"direction={direction}"])
    assert cfg.source.name != cfg.target.name
    assert compose_cfg(["experiment=digits_m2u", f"direction={direction}"]).source.name == (
        cfg.source.name)


@pytest.mark.parametrize("domain", GROUPS["domain"])
def test_domain_group_serves_source_and_target(domain):
    cfg = compose_cfg([f"domain@source={domain}", f"domain@target={domain}"])
    assert cfg.source.name == cfg.target.name


@pytest.mark.parametrize("experiment", ["digits_m2u", "digits_u2m"])
def test_command_line_presets_win_over_experiment_files(experiment):
    """`experiment=digits_* trainer=debug` must be a seconds-long run. (A study's recipe, such
    as nt_source, pins trainer keys on purpose, and Hydra applies experiment files last.)"""
    debug = compose_cfg(["trainer=debug"]).trainer.steps
    assert compose_cfg([f"experiment={experiment}", "trainer=debug"]).trainer.steps == debug


@pytest.mark.parametrize("experiment", ["digits_m2u", "digits_u2m"])
def test_digits_experiments_are_the_study_recipe(experiment):
    """`experiment=digits_* method=<m>` alone is experiments/digits_da's recipe (TLlib's
    digits optimizer, the CPU step budget), for every method."""
    for method in GROUPS["method"]:
        cfg = compose_cfg([f"experiment={experiment}", f"method={method}"])
        assert (cfg.model.name, cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay,
                cfg.optim.momentum, cfg.optim.schedule) == ("lenet", "sgd", 0.01, 1e-3, 0.9,
                                                            "dann")
        assert (cfg.trainer.steps, cfg.trainer.batch_size) == (2000, 32)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_every_model(experiment):
    """Experiments choose options and never pin another option's keys: swapping the model
    under any experiment gives a network that builds (issue 20)."""
    from flax import nnx

    from jtl.models import build_network

    for model in GROUPS["model"]:
        cfg = compose_cfg([f"experiment={experiment}", f"model={model}"])
        # A network is built once per distinct (model, method) config: an experiment that
        # leaves the model's keys alone (the point of this test) reuses the first build.
        key = json.dumps(OmegaConf.to_container(cfg.model), sort_keys=True) + \
            json.dumps(OmegaConf.to_container(cfg.method), sort_keys=True)
        if key not in BUILT:
            method = build_method(cfg.method)
            net = nnx.eval_shape(lambda c=cfg, m=method: build_network(c.model, 3, m, 0))
            BUILT[key] = net.backbone is not None
        assert BUILT[key], (experiment, model)


BUILT: dict[str, bool] = {}  # (model, method) configs already built, across experiments
