"""The cross-lingual study's table: differences paired by seed over completed runs only, the
language average paired by seed too."""

from __future__ import annotations

import importlib.util

from jtl import rundir
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "cross_lingual_summarize", ROOT / "experiments/cross_lingual/summarize.py")
summarize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize)
METRIC = "selected/val/target/test/accuracy"


def run(root, pair, method, seed, acc, status="completed"):
    rundir.write_summary(root / pair / method / f"seed{seed}", {"status": status, METRIC: acc})


def test_differences_are_paired_by_seed_and_unfinished_runs_left_out(tmp_path):
    for seed, base in enumerate([0.50, 0.60, 0.55]):  # seeds differ by 10 points
        run(tmp_path, "fr_books", "source_only", seed, base)
        run(tmp_path, "fr_books", "dann", seed, base - 0.01)
        run(tmp_path, "fr_books", "target_only", seed, base + 0.30)
    run(tmp_path, "fr_dvd", "source_only", 0, 0.5)
    run(tmp_path, "fr_dvd", "dann", 0, 0.5)
    run(tmp_path, "fr_dvd", "target_only", 0, 0.9, status="running")  # not completed
    lines = summarize.table(tmp_path, METRIC)
    row = next(x for x in lines if x.startswith("| fr books"))
    assert row.endswith("| -1.0 [-1.0, -1.0] | +30.0 [+30.0, +30.0] |")
    assert not any(x.startswith("| fr dvd") for x in lines)
    avg = next(x for x in lines if x.startswith("| **fr average"))
    assert avg.startswith("| **fr average (1 categories)** | 3 | 55.0 ± ")
    assert "CLDFA 83.1, XLM-UFD 89.3" in avg
