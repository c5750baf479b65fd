"""The digits study's table: paired deltas over completed runs only; duplicate seeds and mixed
recipes are errors, never silently overwritten or averaged."""

from __future__ import annotations

import importlib.util

import pytest

from jtl import rundir
from jtl.errors import JtlError
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("digits_table",
                                              ROOT / "experiments/digits_da/table.py")
table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table)


def run(root, name, method, seed, acc, steps=2000, status="completed"):
    d = root / name
    cfg = {"source": {"name": "mnist"}, "target": {"name": "usps"}, "method": {"name": method},
           "seed": seed, "trainer": {"steps": steps, "progress": False}}
    rundir.save_config(d, cfg)
    rundir.write_summary(d, {"status": status, "step": steps, "target/test/accuracy": acc,
                             "selected/val/target/test/accuracy": acc,
                             "selected/oracle/target/test/accuracy": acc})
    return d


def test_paired_delta_over_completed_runs(tmp_path):
    for s, (a, b) in enumerate([(0.70, 0.80), (0.72, 0.83), (0.74, 0.83)]):
        run(tmp_path, f"so{s}", "source_only", s, a)
        run(tmp_path, f"dann{s}", "dann", s, b)
    run(tmp_path, "cdan0", "cdan", 0, 0.9, status="running")
    t, unfinished = table.collect(tmp_path)
    rows = {r["method"]: r for r in table.rows(t)}
    assert set(rows) == {"source_only", "dann"} and len(unfinished) == 1
    assert rows["dann"]["delta"].startswith("+10.0 [") and rows["dann"]["delta"].endswith("✓")
    assert rows["dann"]["tllib"] == 91.7


def test_duplicate_seed_is_an_error(tmp_path):
    run(tmp_path, "a", "dann", 0, 0.8)
    run(tmp_path, "b", "dann", 0, 0.9)
    with pytest.raises(JtlError, match="both seed 0"):
        table.collect(tmp_path)


def test_mixed_recipes_are_an_error(tmp_path):
    run(tmp_path, "a", "dann", 0, 0.8, steps=2000)
    run(tmp_path, "b", "source_only", 0, 0.7, steps=600)
    with pytest.raises(JtlError, match="different recipes"):
        table.collect(tmp_path)
