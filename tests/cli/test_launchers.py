"""Grids through Hydra launchers (issue 12): every cell its own run dir, a re-run trains only
the cells without a completed result, and failed cells are named by the launching process
even when they ran in other processes (joblib workers, submitit jobs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jtl import rundir
from jtl.methods import build_method
from tests.conftest import FAST, ROOT, compose_cfg

GRID = [*FAST, "trainer.steps=20", "trainer.eval_every=20", "trainer.checkpoint_every=20",
        "trainer.log_every=10", "hydra.sweep.subdir=${method.name}/seed${seed}"]


def jtl_train(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jtl.train", "-m", *args], cwd=ROOT,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True,
                          text=True, timeout=timeout)


def cells(sweep: Path) -> dict[str, float]:
    """Completed cells -> mtime of their summary.json (rewritten only by training)."""
    return {str(run.relative_to(sweep)): (run / rundir.SUMMARY).stat().st_mtime_ns
            for run in rundir.find_runs(sweep) if rundir.is_completed(run)}


@pytest.mark.slow  # 40 s: a grid rerun training nothing is also tests/transfer/test_pretrain's
def test_joblib_grid_rerun_trains_no_cell_twice(tmp_path):
    sweep = tmp_path / "grid"
    args = [*GRID, "method=source_only,target_only", "seed=0,1", "hydra/launcher=cpu_pool",
            f"hydra.sweep.dir={sweep}"]
    first = jtl_train(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    done = cells(sweep)
    assert sorted(done) == ["source_only/seed0", "source_only/seed1",
                            "target_only/seed0", "target_only/seed1"]
    # Half-finished grid: one cell lost its result; the re-run trains that one only.
    lost = sweep / "target_only/seed1"
    (lost / rundir.SUMMARY).unlink()
    for p in (lost / rundir.CHECKPOINTS).iterdir():
        if p.is_dir():
            import shutil

            shutil.rmtree(p)
    second = jtl_train(*args)
    assert second.returncode == 0, second.stderr[-2000:]
    again = cells(sweep)
    assert sorted(again) == sorted(done)
    retrained = [c for c in done if again[c] != done[c]]
    assert retrained == ["target_only/seed1"]


@pytest.mark.slow  # 13 s: a lost cell is named under submitit_local by test_killed_cells
def test_failed_cell_in_a_joblib_worker_is_named_by_the_launcher(tmp_path):
    sweep = tmp_path / "grid"
    res = jtl_train(*GRID, "trainer.batch_size=16,5000", "hydra/launcher=cpu_pool",
                    f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${trainer.batch_size}")
    assert res.returncode == 1, res.stderr[-2000:]
    assert "1 job(s) of the sweep failed" in res.stderr
    assert f"{sweep / '5000'}: trainer.batch_size=5000 is larger" in res.stderr
    assert rundir.is_completed(sweep / "16")


@pytest.mark.slow  # 13 s: submitit_local also runs in test_killed_cells
def test_submitit_local_executor_runs_the_grid(tmp_path):
    sweep = tmp_path / "grid"
    res = jtl_train(*GRID, "method=source_only", "seed=0,1", "hydra/launcher=submitit_local",
                    "hydra.launcher.timeout_min=5", f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(cells(sweep)) == ["source_only/seed0", "source_only/seed1"]
    s0, s1 = (rundir.read_summary(sweep / f"source_only/seed{s}") for s in (0, 1))
    assert (s0["seed"], s1["seed"]) == (0, 1) and s0["fingerprint"] != s1["fingerprint"]


def test_grid_digits_da_sweeps_directions_methods_seeds():
    cfg = compose_cfg(["experiment=grid_digits_da"])
    assert (cfg.source.name, cfg.target.name, cfg.trainer.steps) == ("mnist", "usps", 2000)
    grid = {k: v.split(",") for k, v in
            compose_cfg(["experiment=grid_digits_da"], hydra=True).hydra.sweeper.params.items()}
    assert grid["direction"] == ["m2u", "u2m"] and grid["seed"] == ["0", "1", "2"]
    # Every domain-adaptation method (reads source labels and target inputs) is a column,
    # with source_only and target_only beside them.
    # (A preset of another method, e.g. dann_amazon, is not a column of its own; the example
    # index a method may read beside them changes nothing here.)
    methods = {m: compose_cfg([f"method={m}"]).method
               for m in (p.stem for p in (ROOT / "conf/method").glob("*.yaml"))}
    uses = {m: {u for u in build_method(c).uses if not u.endswith("/index")}
            for m, c in methods.items() if c.name == m}
    da = {m for m, u in uses.items() if u == {"source/x", "source/y", "target/x"}}
    assert set(grid["method"]) == da | {"source_only", "target_only"}
    for d, pair in (("m2u", ("mnist", "usps")), ("u2m", ("usps", "mnist"))):
        c = compose_cfg(["experiment=grid_digits_da", f"direction={d}"])
        assert (c.source.name, c.target.name) == pair
        assert c.optim == compose_cfg(["experiment=digits_m2u"]).optim  # one recipe
