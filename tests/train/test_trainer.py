"""The trainer: determinism, chunking, streaming, freezing, init_from, summary contract."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jtl.errors import JtlError
from jtl.train import train_and_evaluate
from jtl.train.checkpoint import load_params, manager

SUMMARY_KEYS = {"status", "step", "seed", "method", "source/test/accuracy",
                "target/test/accuracy", "wall_time_s"}


def final_params(run_dir):
    with manager(run_dir / "checkpoints") as m:
        return m.restore(m.latest_step())["params"]


def assert_trees(a, b, exact=True):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        if exact:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        else:
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)


def test_summary_contract_and_learning(fast_cfg, tmp_path):
    s = train_and_evaluate(fast_cfg("trainer.steps=200", "trainer.eval_every=100"), tmp_path)
    assert set(s) >= SUMMARY_KEYS
    assert s["status"] == "completed" and s["step"] == 200
    assert json.loads((tmp_path / "summary.json").read_text()) == s
    assert s["target/test/accuracy"] > 0.8  # a 64-unit MLP learns 8x8 digits in 200 steps
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "target/test/accuracy" in r] == [100, 200]
    assert s["selected/val/step"] in (100, 200) and s["selected/val/split"] == "source/val"
    best = max((r for r in rows if "source/val/accuracy" in r),
               key=lambda r: (r["source/val/accuracy"], -r["step"]))
    assert s["selected/val/target/test/accuracy"] == best["target/test/accuracy"]
    oracle = max(r["target/test/accuracy"] for r in rows if "target/test/accuracy" in r)
    assert s["selected/oracle/target/test/accuracy"] == oracle


def test_target_only_selects_on_target_val(fast_cfg, tmp_path):
    s = train_and_evaluate(fast_cfg("method=target_only"), tmp_path)
    assert s["selected/val/split"] == "target/val"


def test_same_seed_same_params_other_seed_differs(fast_cfg, tmp_path):
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        train_and_evaluate(fast_cfg(f"seed={seed}"), tmp_path / name)
    assert_trees(final_params(tmp_path / "a"), final_params(tmp_path / "b"))
    with pytest.raises(AssertionError):
        assert_trees(final_params(tmp_path / "a"), final_params(tmp_path / "c"))


@pytest.mark.parametrize("variant", ["trainer.steps_per_call=7", "trainer.data_on_device=false"])
def test_chunking_and_streaming_draw_the_same_batches(fast_cfg, tmp_path, variant):
    """A scan chunk, the per-step loop and the host-streamed path train the same model."""
    train_and_evaluate(fast_cfg("trainer.steps_per_call=1"), tmp_path / "loop")
    train_and_evaluate(fast_cfg(variant), tmp_path / "other")
    assert_trees(final_params(tmp_path / "loop"), final_params(tmp_path / "other"), exact=False)


def test_freeze_keeps_matching_params_fixed(fast_cfg, tmp_path):
    train_and_evaluate(fast_cfg("freeze='backbone/.*'", "trainer.steps=1"), tmp_path / "one")
    train_and_evaluate(fast_cfg("freeze='backbone/.*'"), tmp_path / "many")
    a, b = final_params(tmp_path / "one"), final_params(tmp_path / "many")
    assert_trees(a["backbone"], b["backbone"])
    with pytest.raises(AssertionError):
        assert_trees(a["head"], b["head"])


def test_init_from_loads_by_regex(fast_cfg, tmp_path):
    train_and_evaluate(fast_cfg(), tmp_path / "src")
    saved = final_params(tmp_path / "src")
    cfg = fast_cfg("seed=5")
    from flax import nnx

    from jtl.methods import build_method
    from jtl.models import build_network

    fresh = nnx.split(build_network(cfg.model, 10, build_method(cfg.method), 5))[1]
    fresh = fresh.to_pure_dict()
    new, loaded = load_params(tmp_path / "src", fresh, ".*", "head/.*")
    assert loaded and all(p.startswith("backbone/") for p in loaded)
    np.testing.assert_array_equal(new["backbone"]["blocks"][0]["linear"]["kernel"],
                                  saved["backbone"]["blocks"]["0"]["linear"]["kernel"])
    np.testing.assert_array_equal(new["head"]["kernel"], fresh["head"]["kernel"])


def test_init_from_shape_mismatch_says_replace_head(fast_cfg, tmp_path):
    train_and_evaluate(fast_cfg(), tmp_path / "src")
    cfg = fast_cfg()
    from flax import nnx

    from jtl.methods import build_method
    from jtl.models import build_network

    fresh = nnx.split(build_network(cfg.model, 3, build_method(cfg.method), 0))[1].to_pure_dict()
    with pytest.raises(JtlError, match="dont_load='head/"):
        load_params(tmp_path / "src", fresh)


def test_unknown_names_are_clear_errors(fast_cfg, tmp_path):
    with pytest.raises(JtlError, match=r"unknown model .nope..*Known: .*lenet"):
        train_and_evaluate(fast_cfg("model.name=nope"), tmp_path / "m")
    with pytest.raises(JtlError, match="unknown domain 'nope'"):
        train_and_evaluate(fast_cfg("source.name=nope"), tmp_path / "d")
    with pytest.raises(JtlError, match="unknown method"):
        train_and_evaluate(fast_cfg("method.name=nope"), tmp_path / "x")


def test_class_count_mismatch_is_a_clear_error(fast_cfg, tmp_path):
    x = np.random.default_rng(0).random((60, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "three.npz", x=x, y=np.arange(60) % 3)
    cfg = fast_cfg("domain@target=npz", f"target.path={tmp_path / 'three.npz'}")
    with pytest.raises(JtlError, match=r"10 classes.*3.*dont_load=.head/"):
        train_and_evaluate(cfg, tmp_path / "run")


def test_non_finite_loss_stops_with_advice(fast_cfg, tmp_path):
    with pytest.raises(JtlError, match=r"diverged at step \d+: .*loss=nan.*Lower optim\.lr"):
        train_and_evaluate(fast_cfg("optim.lr=1e30"), tmp_path)


def test_init_from_draws_a_new_head_unlike_the_source_runs_initial_one(fast_cfg, tmp_path):
    """Same seed, started from a checkpoint: the non-loaded head must not be the source
    run's own initial head (which its backbone co-adapted with)."""
    # lr must be > 0 (the schema); 1e-30 leaves the source head at its initial values to 1e-29.
    train_and_evaluate(fast_cfg("trainer.steps=1", "optim.lr=1e-30"), tmp_path / "src")
    src_head = final_params(tmp_path / "src")["head"]["kernel"]
    train_and_evaluate(fast_cfg("trainer.steps=1", "optim.lr=1e-30", "freeze='backbone/.*'",
                                f"init_from={tmp_path / 'src'}", "dont_load='head/.*'"),
                       tmp_path / "ft")
    ft = final_params(tmp_path / "ft")
    assert not np.allclose(np.asarray(ft["head"]["kernel"]), np.asarray(src_head), atol=1e-3)
    assert_trees(ft["backbone"], final_params(tmp_path / "src")["backbone"])
