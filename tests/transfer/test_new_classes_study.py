"""The finetune_vs_freeze study's second new-classes design: episodes pair every arm on one
support set that the seed draws, and the earlier-layer prototype (layers.py) reproduces the
trainer's prototype run on the backbone output before it reports another layer."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from jtl.train import train_and_evaluate
from tests.conftest import ROOT, compose_cfg
from tests.transfer.conftest import SMALL

STUDY = ROOT / "experiments" / "finetune_vs_freeze"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"ftvf_{name}", STUDY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run_py, layers, table = _module("run"), _module("layers"), _module("table")
select_head = _module("select_head")


def _value(overrides: list[str], key: str) -> str | None:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")), None)


def test_lenet_episodes_draw_the_support_set_with_the_seed_and_pair_every_arm():
    jobs = run_py.new_classes_lenet()
    by_cell: dict[tuple, list[list[str]]] = {}
    for run_dir, overrides in jobs:
        seed = _value(overrides, "seed")
        assert _value(overrides, "target.split_seed") == seed  # episode = seed = support set
        assert run_dir.name == f"seed{seed}"
        direction, arm, k = run_dir.parts[-4], run_dir.parts[-3], run_dir.parts[-2]
        assert _value(overrides, "target.per_class") == k[1:]
        by_cell.setdefault((direction, k, seed), []).append(arm)
    arms = set(run_py.LENET_ARMS)
    assert len(by_cell) == 2 * len(run_py.NEW_KS) * len(run_py.EPISODES)
    assert all(sorted(a) == sorted(arms) for a in by_cell.values())
    # the goal's arms come first, so a cut-short study still has every one of their episodes
    first = {run_dir.parts[-3] for run_dir, _ in jobs[:len(jobs) // 2]}
    assert first == {"target_only", "prototype"}


@pytest.fixture(scope="module")
def prototype_run(source_run, tmp_path_factory):
    """A completed 1-shot prototype run, laid out as the study lays out its runs."""
    root = tmp_path_factory.mktemp("study") / "new_classes_lenet"
    run_dir = root / "d" / "prototype" / "k1" / "seed0"
    s = train_and_evaluate(compose_cfg([*SMALL, "transfer=prototype", f"init_from={source_run}",
                                        "target.per_class=1", "trainer.steps=1",
                                        "trainer.batch_over_split=resample",
                                        "target.classes=[5,6,7,8,9]"]), run_dir)
    return root, run_dir, s


def test_layer_prototype_reproduces_the_run_then_scores_another_layer(prototype_run):
    root, _, s = prototype_run
    layers.main(root)
    out = json.loads((root / "d" / "prototype_conv2" / "k1" / "seed0" / "prototype.json")
                     .read_text())
    assert out["backbone_output_accuracy"] == s["target/test/accuracy"]
    # this MLP's second block is its last: the layer path gives the backbone output's result
    assert out["layer"] == layers.LAYER
    assert out["target/test/accuracy"] == pytest.approx(s["target/test/accuracy"], abs=1e-6)
    # table.py reads it as an arm beside the trainer's runs, keyed by the run's seed
    runs = table.collect(root)
    assert set(runs) == {("d", "prototype", "1"), ("d", "prototype_conv2", "1")}
    assert runs["d", "prototype_conv2", "1"] == {0: out["target/test/accuracy"]}


def test_layer_prototype_refuses_a_run_it_does_not_reproduce(prototype_run, monkeypatch):
    _, run_dir, _ = prototype_run
    real = layers.read_summary
    monkeypatch.setattr(layers, "read_summary", lambda d: {
        **real(d), "target/test/accuracy": real(d)["target/test/accuracy"] - 0.05})
    with pytest.raises(RuntimeError, match="not be comparable"):
        layers.score(run_dir)


def test_third_design_draws_fresh_episodes_with_k1_first():
    jobs = run_py.new_classes_select()
    seeds = {int(_value(o, "seed")) for _, o in jobs}
    assert len(seeds) == 30 and not seeds & set(run_py.EPISODES)  # none reused
    for run_dir, overrides in jobs:
        assert _value(overrides, "target.split_seed") == _value(overrides, "seed")
        assert run_dir.parts[-3] in run_py.SELECT_ARMS
    half = len(jobs) // 2
    assert {_value(o, "target.per_class") for _, o in jobs[:half]} == {"1"}
    assert len({(d.parts[-4], d.parts[-3], d.parts[-1]) for d, _ in jobs[:half]}) == half


def test_head_pilot_holds_out_source_classes_only_and_breaks_ties_to_the_earlier():
    held = set()
    for f in select_head.FOLDS:
        base, out = select_head.fold_classes(f)
        assert len(out) == 2 and sorted(base + out) == [0, 1, 2, 3, 4]  # source digits only
        held.add(tuple(out))
    assert len(held) == 5
    names = [select_head.name(c) for c in select_head.CANDIDATES]
    means = dict.fromkeys(names, 0.5)
    means[names[3]], means[names[5]] = 0.80, 0.801  # within 0.2 points: the earlier wins
    assert select_head.select(means) == names[3]
    means[names[5]] = 0.81
    assert select_head.select(means) == names[5]


def test_selected_layer_head_equals_the_trainer_cosine_prototype(prototype_run, source_run,
                                                                tmp_path):
    """On this MLP the layer is the backbone output, so the layer script's cosine head must
    give what a trainer run of `transfer=prototype_cosine` on the same support set gives."""
    root, _, _ = prototype_run
    layers.main(root, layers.SELECTED)
    out = json.loads((root / "d" / "prototype_selected" / "k1" / "seed0" / "prototype.json")
                     .read_text())
    assert out["metric"] == "cosine"
    s = train_and_evaluate(compose_cfg([*SMALL, "transfer=prototype_cosine",
                                        f"init_from={source_run}", "target.per_class=1",
                                        "trainer.steps=1", "trainer.batch_over_split=resample",
                                        "target.classes=[5,6,7,8,9]"]), tmp_path / "cos")
    assert out["target/test/accuracy"] == pytest.approx(s["target/test/accuracy"], abs=1e-6)


def test_a_cut_backbone_prototype_run_equals_the_layer_script(prototype_run, source_run,
                                                              tmp_path):
    """`transfer=prototype_cosine transfer.keep_blocks=1` (a trainer run) gives what
    `layers.py` computes on the first block of the uncut run: the selected head of the third
    design is a recipe, not only an analysis."""
    _, run_dir, _ = prototype_run
    by_layer = layers.score(run_dir, "backbone/blocks/0", "cosine")
    s = train_and_evaluate(compose_cfg([*SMALL, "transfer=prototype_cosine",
                                        "transfer.keep_blocks=1", f"init_from={source_run}",
                                        "target.per_class=1", "trainer.steps=1",
                                        "trainer.batch_over_split=resample",
                                        "target.classes=[5,6,7,8,9]"]), tmp_path / "cut")
    assert s["target/test/accuracy"] == pytest.approx(by_layer["target/test/accuracy"], abs=1e-6)


def test_gain_plot_draws_the_paired_gains(tmp_path):
    runs = {("d", "target_only", "1"): {0: 0.5, 1: 0.6, 2: 0.7},
            ("d", "prototype", "1"): {0: 0.6, 1: 0.7, 2: 0.75},
            ("d", "prototype", "5"): {0: 0.9}}  # no target_only at k = 5: not drawn
    table.plot_gains(runs, {"d": "d"}, ("1", "5"), tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    g = table.gap(runs["d", "prototype", "1"], runs["d", "target_only", "1"])
    assert -100 * g["ntg_mean"] == pytest.approx((10 + 10 + 5) / 3)
