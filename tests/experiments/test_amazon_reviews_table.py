"""The Amazon study's table: gains paired by seed over completed runs only, the average row
paired by seed too, and the distance to the published figure."""

from __future__ import annotations

import importlib.util

from jtl import rundir
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "amazon_summarize", ROOT / "experiments/amazon_reviews/summarize.py")
summarize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize)
METRIC = "selected/val/target/test/accuracy"


def run(root, pair, method, seed, acc, status="completed"):
    rundir.write_summary(root / pair / method / f"seed{seed}", {"status": status, METRIC: acc})


def test_gain_is_paired_by_seed_and_unfinished_runs_are_left_out(tmp_path):
    for seed, (so, da) in enumerate([(0.70, 0.72), (0.80, 0.82), (0.75, 0.77)]):
        run(tmp_path, "b2k", "source_only", seed, so)
        run(tmp_path, "b2k", "dann", seed, da)
    run(tmp_path, "b2k", "dann", 3, 0.10, status="running")  # no completed partner: ignored
    run(tmp_path, "k2b", "source_only", 0, 0.70)
    run(tmp_path, "k2b", "dann", 0, 0.71)
    lines, rows = summarize.table(tmp_path, METRIC)
    b2k = next(x for x in lines if x.startswith("| B->K"))
    # seeds differ by 10 points, the paired gain is +2.0 on every seed: a zero-width interval
    assert b2k == ("| B->K | 3 | 77.9 | 75.0 | 77.0 | +2.0 [+2.0, +2.0] | -0.9 |")
    assert set(rows) == {"b2k", "k2b"}
    # the average row pairs only seeds present in every pair (seed 0 here)
    assert lines[-1].startswith("| **average (2 pairs)** | 1 |")
