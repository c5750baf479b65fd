"""`trainer.seeds`: several seeds of one config in one vmapped program (issue 12), each an
ordinary run dir that equals a separate run of its seed up to float order."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jtl import rundir
from jtl.errors import JtlError
from jtl.train import train_and_evaluate
from jtl.train.checkpoint import manager
from jtl.train.trainer import lane_config

# vmapping turns per-seed matmuls into batched ones, which may sum in another order: after
# 30 float32 steps the parameters differ by a few ulps (measured: max |diff| below 1e-6 for
# dann on the MLP). A wrong lane (seeds swapped, keys shared, one seed's batch fed to
# another) differs by a whole training trajectory, orders of magnitude more.
ATOL = 1e-5
STEPS = ["trainer.steps=30", "trainer.eval_every=15", "trainer.checkpoint_every=15",
         "trainer.log_every=15"]


def params(run_dir):
    with manager(run_dir / rundir.CHECKPOINTS) as m:
        return [np.asarray(a) for a in
                jax.tree_util.tree_leaves(m.restore(m.latest_step())["params"])]


@pytest.mark.parametrize("streamed,norm", [(False, "none"), (True, "none"), (False, "batch")])
def test_vmapped_seeds_equal_separate_runs(tmp_path, fast_cfg, streamed, norm):
    # norm=batch: the batch-norm statistics travel in the vmapped state like the weights. With
    # SGD (the digits recipe's): under Adam, a bias feeding a BatchNorm has an exactly-zero
    # gradient whose float-order noise Adam normalises into lr-sized steps: Adam runs of such
    # a network differ by up to 1e-2 after 30 steps, vmapped vs not (measured; the function
    # the bias feeds is unchanged, BatchNorm subtracts it).
    extra = [*STEPS, "method=dann", f"trainer.data_on_device={not streamed}",
             f"model.norm={norm}", f"method.disc_norm={norm}",
             *(["optim=sgd", "optim.lr=0.05"] if norm == "batch" else [])]
    out = train_and_evaluate(fast_cfg(*extra, "trainer.seeds=[0,1]"), tmp_path / "vmapped")
    assert sorted(out["runs"]) == [0, 1]
    for seed in (0, 1):
        lane = tmp_path / "vmapped" / f"seed{seed}"
        alone_cfg = fast_cfg(*extra, f"seed={seed}")
        alone = train_and_evaluate(alone_cfg, tmp_path / f"alone{seed}")
        s = rundir.read_summary(lane)
        assert s["status"] == "completed" and s["seed"] == seed and s["vmapped_seeds"] == 2
        # An ordinary run of its seed: same identity, so report / NTG / load_run see it so.
        assert rundir.identity(rundir.load_config(lane)) == rundir.identity(alone_cfg)
        assert s["fingerprint"] == alone["fingerprint"]
        for a, b in zip(params(lane), params(tmp_path / f"alone{seed}"), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)
        assert abs(s["target/test/accuracy"] - alone["target/test/accuracy"]) < 0.01
        rows = rundir.read_metrics(lane)
        assert [r["step"] for r in rows] == [15, 30]
    # The seeds differ from each other (their own init and batches).
    assert not np.allclose(params(tmp_path / "vmapped/seed0")[0],
                           params(tmp_path / "vmapped/seed1")[0])


def test_rerun_trains_only_missing_seeds(tmp_path, fast_cfg):
    cfg = fast_cfg(*STEPS, "trainer.seeds=[0,1,2]")
    train_and_evaluate(fast_cfg(*STEPS, "seed=1"), tmp_path / "seed1")  # done separately
    before = (tmp_path / "seed1" / rundir.SUMMARY).stat().st_mtime_ns
    out = train_and_evaluate(cfg, tmp_path)
    assert sorted(out["runs"]) == [0, 1, 2]
    assert (tmp_path / "seed1" / rundir.SUMMARY).stat().st_mtime_ns == before
    assert out["runs"][0]["vmapped_seeds"] == 2  # only 0 and 2 were trained
    stamps = {s: (tmp_path / f"seed{s}" / rundir.SUMMARY).stat().st_mtime_ns for s in (0, 2)}
    train_and_evaluate(cfg, tmp_path)
    assert stamps == {s: (tmp_path / f"seed{s}" / rundir.SUMMARY).stat().st_mtime_ns
                      for s in (0, 2)}


def test_seeds_are_checked(tmp_path, fast_cfg):
    with pytest.raises(JtlError, match="distinct"):
        train_and_evaluate(fast_cfg(*STEPS, "trainer.seeds=[1,1]"), tmp_path)
    with pytest.raises(JtlError, match="one device"):
        train_and_evaluate(fast_cfg(*STEPS, "trainer.seeds=[0,1]", "trainer.mesh=2"), tmp_path)
    assert lane_config({"seed": 9, "trainer": {"seeds": [3, 4]}}, 4) == {
        "seed": 4, "trainer": {"seeds": None}}


def test_a_key_following_the_seed_is_refused(tmp_path, fast_cfg):
    # Each lane is resolved as a separate run of its seed would be, so `${seed}` follows it...
    cfg = fast_cfg(*STEPS, "trainer.seeds=[0,1]", "target.split_seed=${seed}")
    assert [lane_config(cfg, s)["target"]["split_seed"] for s in (0, 3)] == [0, 3]
    # ...and one vmapped program cannot train lanes whose data differ: one line, nothing run.
    with pytest.raises(JtlError, match=r"differ in \['target.split_seed'\]"):
        train_and_evaluate(cfg, tmp_path)
    assert not (tmp_path / "seed0").exists()


def test_lanes_join_the_identity_only_under_adam_with_batch_norm(fast_cfg):
    """Where vmapping parts a seed's run from a separate one beyond float noise (Adam and
    BatchNorm, `lanes_change_results`), the lane count is part of each seed's identity."""
    from jtl.train.trainer import lanes_change_results

    dann_bn = fast_cfg("method=dann")  # DANN's discriminator has BatchNorm (disc_norm: batch)
    assert lanes_change_results(dann_bn)
    assert not lanes_change_results(fast_cfg("method=dann", "method.disc_norm=none"))
    assert not lanes_change_results(fast_cfg("method=dann", "optim=sgd"))
    assert lanes_change_results(fast_cfg("model.norm=batch"))
    lane = lane_config(dann_bn, 0, lanes=4)
    assert lane["trainer"]["lanes"] == 4 and lane["trainer"]["seeds"] is None
    alone = lane_config(dann_bn, 0)
    assert "lanes" not in alone["trainer"]
    assert rundir.fingerprint(lane) != rundir.fingerprint(alone)
    assert rundir.fingerprint(lane_config(dann_bn, 0, lanes=2)) != rundir.fingerprint(lane)


def test_adam_batch_norm_lanes_are_kept_apart_from_separate_runs(tmp_path, fast_cfg):
    extra = ["trainer.steps=4", "trainer.eval_every=4", "trainer.checkpoint_every=4",
             "trainer.log_every=4", "model.norm=batch"]
    out = train_and_evaluate(fast_cfg(*extra, "trainer.seeds=[0,1]"), tmp_path / "vm")
    for seed in (0, 1):
        cfg = rundir.load_config(tmp_path / "vm" / f"seed{seed}")
        assert cfg["trainer"]["lanes"] == 2
        assert out["runs"][seed]["fingerprint"] == rundir.fingerprint(cfg)
    # A separate run is another config: it does not take over a lane's dir ...
    with pytest.raises(JtlError, match=r"trainer\.lanes"):
        train_and_evaluate(fast_cfg(*extra, "seed=0"), tmp_path / "vm" / "seed0")
    # ... and a single run cannot claim a width.
    with pytest.raises(JtlError, match=r"set by trainer\.seeds"):
        train_and_evaluate(fast_cfg(*extra, "+trainer.lanes=2"), tmp_path / "single")
    # Seeds completed 2-wide are not completed runs of a 3-wide program.
    with pytest.raises(JtlError, match=r"trainer\.lanes"):
        train_and_evaluate(fast_cfg(*extra, "trainer.seeds=[0,1,2]"), tmp_path / "vm")


def test_a_baseline_of_a_lane_is_a_single_run(fast_cfg):
    from jtl.results.baselines import baseline_overrides

    lane = lane_config(fast_cfg("method=dann"), 0, lanes=3)
    assert not any("lanes" in o for o in baseline_overrides(lane, 0))
