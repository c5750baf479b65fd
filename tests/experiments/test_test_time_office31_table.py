"""The Office-31 source-free table (experiments/test_time/office31.py): each adapted run paired
by seed with the source run it loaded, the six-task average over seeds only when every task
is complete, unfinished runs not read; and the runs it would train load the source's neck and
head but not its backbone (the cached features stay valid)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from jtl import rundir
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "tt_office31", ROOT / "experiments/test_time/office31.py")
office31 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(office31)


def write(path: Path, acc: float, status: str = "completed") -> None:
    rundir.write_summary(path, {"status": status, office31.KEY: acc})


def args(tmp_path: Path, tasks: list[str]) -> argparse.Namespace:
    return argparse.Namespace(da=tmp_path / "da", out=tmp_path / "tt", methods=["shot"],
                              tasks=tasks)


def test_pairs_by_seed_and_averages_only_complete_tasks(tmp_path: Path):
    for s, (src, shot) in enumerate([(0.60, 0.70), (0.62, 0.74), (0.64, 0.72)]):
        write(tmp_path / "da/A2W/source_only" / f"seed{s}", src)
        write(tmp_path / "tt/A2W/shot" / f"seed{s}", shot)
        write(tmp_path / "da/W2D/source_only" / f"seed{s}", 0.96)
        write(tmp_path / "tt/W2D/shot" / f"seed{s}", 0.95)
    table = office31.table(args(tmp_path, ["A2W", "W2D"])).splitlines()
    a2w = next(r for r in table if r.startswith("| A->W"))
    assert "| 62.0 | 72.0 | +10.0 [" in a2w  # differences 10, 12, 8 -> mean 10
    w2d = next(r for r in table if r.startswith("| W->D"))
    assert "-1.0 [-1.0, -1.0]" in w2d
    assert "| **average** | 79.0 | 83.5 | +4.5 [" in table[-1]
    # an unfinished run: its task has no row values and the average is not reported
    write(tmp_path / "tt/W2D/shot/seed2", 0.99, status="running")
    table = office31.table(args(tmp_path, ["A2W", "W2D"])).splitlines()
    assert "(incomplete)" in table[-1]


def test_a_run_loads_the_source_run_but_not_its_backbone(tmp_path: Path):
    job, out, overrides = next(j for j in office31.jobs(args(tmp_path, ["D2A"]))
                               if j[1].name == "seed1")
    assert out == tmp_path / "tt/D2A/shot/seed1"
    assert job == tmp_path / "da/D2A/source_only/seed1"
    assert "source=null" in overrides and "dont_load=backbone/.*" in overrides
    assert f"init_from={job.resolve()}" in overrides and "seed=1" in overrides
    assert "domain@target=office31_amazon" in overrides
    assert "trainer.steps=675" in overrides and "method.interval=45" in overrides  # 15 epochs
    with pytest.raises(Exception, match="shot or tent"):
        office31.method_overrides("dann", "amazon")
