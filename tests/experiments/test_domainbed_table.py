"""The DomainBed study's table: each method's difference from ERM paired by seed, under each
selection rule, over completed runs only, beside DomainBed's published numbers."""

from __future__ import annotations

import importlib.util

from jtl import rundir
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "domainbed_summarize", ROOT / "experiments/domainbed/summarize.py")
summarize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize)


def run(root, method, seed, val, oracle, status="completed"):
    rundir.write_summary(root / method / f"seed{seed}", {
        "status": status, f"selected/val/{summarize.TEST}": val,
        f"selected/oracle/{summarize.TEST}": oracle, summarize.TEST: oracle - 0.05})


def test_difference_is_paired_by_seed_per_rule(tmp_path):
    for seed, (erm, irm) in enumerate([(0.10, 0.30), (0.20, 0.40), (0.15, 0.35)]):
        run(tmp_path, "source_only", seed, erm, erm + 0.1)
        run(tmp_path, "irm", seed, irm, irm + 0.2)
    run(tmp_path, "irm", 3, 0.9, 0.9, status="running")  # unfinished: left out
    val = summarize.table(tmp_path, "val")
    oracle = summarize.table(tmp_path, "oracle")
    final = summarize.table(tmp_path, "final")
    # seeds differ by 10 points, the paired difference is +20 on every seed: zero width
    assert "| IRM | 3 | 35.0 +- 2.9 | +20.0 [+20.0, +20.0] | 10.2 | 52.0 |" in val
    assert "| IRM | 3 | 55.0 +- 2.9 | +30.0 [+30.0, +30.0] | 58.5 | 67.7 |" in oracle
    assert "| IRM | 3 | 50.0 +- 2.9 | +30.0 [+30.0, +30.0] | 58.5 | 67.7 |" in final
    assert "| ERM | 3 | 15.0 +- 2.9 |  | 10.0 | 51.5 |" in val
    assert not any(line.startswith("| VREx") for line in val)  # no runs, no row
