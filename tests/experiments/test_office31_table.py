"""The Office-31 study's tables: per-task means, the six-task average and each method's gain
over source_only paired by seed, honest and oracle rows, TLlib's averages beside; only
completed runs are read."""

from __future__ import annotations

import importlib.util

from jtl import rundir
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "office31_summarize", ROOT / "experiments/office31/summarize.py")
summarize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize)


def run(path, val, oracle, status="completed"):
    rundir.write_summary(path, {"status": status, f"selected/val/{summarize.TEST}": val,
                                f"selected/oracle/{summarize.TEST}": oracle})


def test_da_gain_is_paired_by_seed_on_the_six_task_average(tmp_path):
    for i, task in enumerate(summarize.TASKS):
        for seed in range(3):
            erm = 0.50 + 0.01 * i + 0.10 * seed  # seeds far apart, tasks apart
            run(tmp_path / task / "source_only" / f"seed{seed}", erm, erm + 0.01)
            run(tmp_path / task / "dann" / f"seed{seed}", erm + 0.05, erm + 0.07)
    run(tmp_path / "A2W" / "mcc" / "seed0", 0.99, 0.99, status="running")  # unfinished
    val = summarize.da_table(tmp_path, "val")
    oracle = summarize.da_table(tmp_path, "oracle")
    # every seed gains 5 points on every task: a zero-width interval despite the seed spread
    assert "| DANN | 65.0 | 66.0 | 67.0 | 68.0 | 69.0 | 70.0 | 67.5 | +5.0 [+5.0, +5.0] | 86.1 |" \
        in val
    assert "| source only (ERM) | 60.0 | 61.0 | 62.0 | 63.0 | 64.0 | 65.0 | 62.5 |  | 79.5 |" in val
    assert any(line.startswith("| DANN |") and "+6.0 [+6.0, +6.0]" in line for line in oracle)
    assert not any(line.startswith("| MCC") for line in val)  # no completed run, no row


def test_ft_rows_pair_recipes_with_the_linear_probe(tmp_path):
    for seed, (lp, ft) in enumerate([(0.60, 0.70), (0.70, 0.80), (0.65, 0.75)]):
        run(tmp_path / "webcam" / "k3" / "linear_probe" / f"seed{seed}", lp, lp)
        run(tmp_path / "webcam" / "k3" / "finetune" / f"seed{seed}", ft, ft)
    lines = summarize.ft_table(tmp_path)
    assert "| webcam | 3 | 65.0 |  | 75.0 (+10.0 [+10.0, +10.0]) |  |  |" in lines
    assert not any(line.startswith("| amazon") for line in lines)
