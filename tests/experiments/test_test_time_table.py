"""The MNIST-C table (experiments/test_time/summarize_mnistc.py): each method paired by seed
with its own source model, online methods read by their online accuracy and offline ones by
test accuracy, a corruption where the interval is below 0 marked as hurting, and the average
over corruptions taken only over corruptions complete for every seed."""

from __future__ import annotations

import importlib.util
import json

import pytest

from jtl import rundir
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "mnistc_summarize", ROOT / "experiments/test_time/summarize_mnistc.py")
summarize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize)


def source(root, corruption, accs):
    (root / corruption).mkdir(parents=True, exist_ok=True)
    (root / corruption / "source_only.json").write_text(
        json.dumps({str(s): a for s, a in enumerate(accs)}))


def run(root, corruption, method, seed, acc, status="completed", key=None):
    key = key or summarize.KEY[method]
    rundir.write_summary(root / corruption / method / f"seed{seed}",
                         {"status": status, key: acc, "target/test/accuracy": 0.0
                          if key != "target/test/accuracy" else acc})


def test_paired_gains_hurts_and_the_average(tmp_path):
    source(tmp_path, "fog", [0.50, 0.60, 0.70])
    source(tmp_path, "zigzag", [0.80, 0.80, 0.80])
    for s, (fog, zz) in enumerate([(0.60, 0.78), (0.70, 0.775), (0.80, 0.785)]):
        run(tmp_path, "fog", "tent", s, fog)  # +10 on every seed
        run(tmp_path, "zigzag", "tent", s, zz)  # -2, -2.5, -1.5: hurts
        run(tmp_path, "fog", "adabn", s, fog + 0.05)
    run(tmp_path, "zigzag", "adabn", 0, 0.90)  # one seed only: not in adabn's average
    run(tmp_path, "zigzag", "adabn", 1, 0.10, status="running")  # unfinished: ignored
    data = summarize.collect(tmp_path)
    # tent is read by its online accuracy (the runs' target/test/accuracy is 0 here)
    assert data["fog"]["tent"] == pytest.approx({0: 60.0, 1: 70.0, 2: 80.0})
    assert data["zigzag"]["adabn"] == pytest.approx({0: 90.0})
    lines, numbers = summarize.tables(data)
    fog = numbers["per_corruption"]["fog"]["tent"]
    assert (fog["diff"], fog["lo"], fog["hi"]) == pytest.approx((10.0, 10.0, 10.0))
    zz = numbers["per_corruption"]["zigzag"]["tent"]
    assert zz["diff"] == pytest.approx(-2.0) and zz["hi"] < 0
    assert summarize.verdict(zz) == "hurts"
    assert "**↓**" in next(x for x in lines if x.startswith("| zigzag"))
    # the average pairs seeds over both corruptions: +4, +3.75, +4.25
    avg = numbers["average"]["tent"]
    assert set(avg["corruptions"]) == {"fog", "zigzag"}
    assert avg["diff"] == pytest.approx(4.0) and avg["lo"] > 0
    # adabn's average: fog only (zigzag lacks seeds 1 and 2)
    assert numbers["average"]["adabn"]["corruptions"] == ["fog"]
    assert numbers["average"]["adabn"]["diff"] == pytest.approx(15.0)
    row = next(x for x in lines if x.startswith("| tent |"))
    assert row.endswith("| 1 / 0 / 1 |")
