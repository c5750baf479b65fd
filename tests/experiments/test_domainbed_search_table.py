"""The DomainBed search table: per trial, each rule chooses one sample of that trial (DomainBed's
protocol), then mean +- SE over trials and the difference from ERM paired by trial."""

from __future__ import annotations

import importlib.util
import json

from jtl import rundir
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "domainbed_summarize_search", ROOT / "experiments/domainbed/summarize_search.py")
summarize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize)


def lane(root, method, k, seed, rows, status="completed"):
    d = root / method / f"sample{k}" / f"seed{seed}"
    rundir.write_summary(d, {"status": status})
    (d / rundir.METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))


def row(step, val, target_val, test):
    return {"step": step, "source/val/accuracy": val, "target/val/accuracy": target_val,
            "target/test/accuracy": test, "source.0/test/accuracy": 0.5 + step / 10,
            "source.1/test/accuracy": 0.6}


def test_each_rule_chooses_a_sample_per_trial(tmp_path):
    for s in range(3):
        off = 0.1 * s  # trials differ by 10 points; the choices do not
        for method, gain in (("source_only", 0.0), ("irm", 0.2)):
            # sample 0: best source val (at step 1); sample 1: best final target val; sample 2:
            # best target test anywhere (step 1)
            lane(tmp_path, method, 0, s, [row(1, 0.9, 0.1, off + gain + 0.10),
                                          row(2, 0.5, 0.1, off + gain + 0.12)])
            lane(tmp_path, method, 1, s, [row(1, 0.6, 0.2, off + gain + 0.20),
                                          row(2, 0.6, 0.8, off + gain + 0.30)])
            lane(tmp_path, method, 2, s, [row(1, 0.7, 0.9, off + gain + 0.50),
                                          row(2, 0.7, 0.3, off + gain + 0.40)])
    lane(tmp_path, "irm", 3, 0, [row(1, 1.0, 1.0, 1.0)], status="running")  # unfinished: out
    val = summarize.table(tmp_path, "val")
    oracle = summarize.table(tmp_path, "oracle")
    jtl = summarize.table(tmp_path, "jtl_oracle")
    # val: sample 0 at step 1 (10% + trial); +20 over ERM on every trial: zero width
    assert "| IRM | 3 x 3 | 40.0 +- 5.8 | +20.0 [+20.0, +20.0] | 0, 0, 0 | 60.0 +- 0.0 | 10.2 | " \
        "52.0 |" in val
    assert "| ERM | 3 x 3 | 20.0 +- 5.8 |  | 0, 0, 0 | 60.0 +- 0.0 | 10.0 | 51.5 |" in val
    # DomainBed's oracle: last step, target val picks sample 1, its final test 30%; the
    # training environments' test accuracies are read at that step (step 2: 70% and 60%)
    assert "| IRM | 3 x 3 | 60.0 +- 5.8 | +20.0 [+20.0, +20.0] | 1, 1, 1 | 65.0 +- 0.0 | 58.5 | " \
        "67.7 |" in oracle
    # jtl's oracle: sample 2 at step 1, 50%
    assert "| IRM | 3 x 3 | 80.0 +- 5.8 | +20.0 [+20.0, +20.0] | 2, 2, 2 | 60.0 +- 0.0 | 58.5 | " \
        "67.7 |" in jtl
    # a trial with a sample missing is left out of the table, not silently averaged
    (tmp_path / "irm" / "sample2" / "seed1" / rundir.SUMMARY).unlink()
    assert "| IRM | 2 x 3 |" in summarize.table(tmp_path, "val")[-1]
