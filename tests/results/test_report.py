"""`jtl.report` on a generated sweep: the CSV's numbers equal a numpy computation."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from jtl.cli.measure import main as measure_main
from jtl.cli.report import main
from jtl.measures import ntg
from jtl.results.report import build_report, error_bars
from tests.results.ntg_sweep import accuracy as sweep_accuracy
from tests.results.ntg_sweep import make_sweep

report_main = main

T_975_DF2 = 4.302652729911275  # Student-t 97.5% quantile, 2 degrees of freedom (3 seeds)
SEEDS = (0, 1, 2)


def accuracy(method: str, seed: int, per_class: int = 10) -> float:
    """A fixed, seed-dependent 'result' the test can recompute."""
    base = {"dann": 0.80, "target_only": 0.85, "source_only": 0.70}[method]
    return base + 0.01 * per_class / 10 + 0.013 * seed - 0.004 * seed**2


def write_run(root: Path, name: str, method: str, seed: int, per_class: int = 10,
              status: str = "completed", pad: float | None = None,
              acc: float | None = None) -> None:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    config = {
        "seed": seed,
        "init_from": None,
        "method": {"name": method, **({"lambda_max": 1.0} if method == "dann" else {})},
        "source": {"name": "mnist", "shifts": []},
        "target": {"name": "usps", "per_class": per_class, "shifts": []},
        "trainer": {"steps": 100, "progress": seed == 0},  # never a grouping key either
        "paths": {"data_dir": f"/tmp/data{seed}"},  # differs, but never a grouping key
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    acc = accuracy(method, seed, per_class) if acc is None else acc
    summary = {"status": status, "step": 100, "seed": seed, "method": method,
               "source": "mnist", "target": "usps", "num_params": 1234,
               "source/test/accuracy": 0.99 - 0.001 * seed, "target/test/accuracy": acc,
               "wall_time_s": 10.0 + seed}
    (run / "summary.json").write_text(json.dumps(summary))
    if pad is not None:
        (run / "measures.json").write_text(json.dumps({"pad": pad, "ntg_verdict": "x"}))


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as f:
        return {row["method.name"]: row for row in csv.DictReader(f)}


def ci(values: list[float]) -> tuple[float, float, float]:
    x = np.array(values)
    half = T_975_DF2 * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    """2 methods x 3 seeds, one failed run, PAD measured on the dann runs."""
    i = 0
    for method in ("dann", "target_only"):
        for seed in SEEDS:
            write_run(tmp_path, f"{i}", method, seed,
                      pad=0.5 + 0.1 * seed if method == "dann" else None)
            i += 1
    write_run(tmp_path, "failed", "dann", 3, status="failed")
    return tmp_path


def test_csv_equals_numpy_and_markdown_prints(grid: Path, capsys) -> None:
    assert main([str(grid)]) == 0
    out = capsys.readouterr().out
    assert "6 completed runs in 2 groups; skipped 1 not completed (failed: 1)" in out
    header = next(line for line in out.splitlines() if line.startswith("| method.name"))
    # Only the method varies: the seed, paths.* and trainer.progress never group;
    # method.lambda_max is present for dann only, so it varies too and is a column; so is
    # method.disc_norm, which a dann config without it meant as none (rundir.MIGRATIONS).
    assert header.split(" | ")[:4] == ["| method.name", "method.disc_norm", "method.lambda_max",
                                       "n"]
    assert "| dann | none | 1.0 | 3 |" in out
    rows = read_csv(grid / "report.csv")
    for method in ("dann", "target_only"):
        mean, low, high = ci([accuracy(method, s) for s in SEEDS])
        row = rows[method]
        assert row["n"] == "3"
        assert float(row["target/test/accuracy/mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(row["target/test/accuracy/ci_low"]) == pytest.approx(low, rel=1e-12)
        assert float(row["target/test/accuracy/ci_high"]) == pytest.approx(high, rel=1e-12)
        wall = ci([10.0 + s for s in SEEDS])
        assert float(row["wall_time_s/mean"]) == pytest.approx(wall[0], rel=1e-12)
    # measures.json joins the summary: PAD only where it was measured.
    assert float(rows["dann"]["pad/mean"]) == pytest.approx(0.6, rel=1e-12)
    assert rows["dann"]["pad/n"] == "3" and rows["target_only"]["pad/n"] == "0"
    assert "seed/mean" not in rows["dann"] and "num_params/mean" not in rows["dann"]
    assert (grid / "report.md").read_text() in out
    assert (grid / "report_target_test_accuracy.png").read_bytes()[:4] == b"\x89PNG"


def _ntg_rows(root: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(root / "report.csv") as f:
        return {(r["method.name"], r.get("target.per_class", ""), r.get("init_from", "")): r
                for r in csv.DictReader(f)}


NTG_GROUP_KEYS = [f"{p}_{s}" for p in ("ntg", "ntg_adaptation_gain", "ntg_zero_label")
                  for s in ("mean", "ci_low", "ci_high", "n", "verdict")]


def test_report_and_measure_give_the_same_ntg(tmp_path: Path, capsys) -> None:
    """One sweep, both entry points: the same references, the same numbers, and runs that
    read no target label (dann, source_only) are never set against the full-label
    target_only that sits in the sweep."""
    runs = make_sweep(tmp_path)
    assert measure_main([f"run_dir={tmp_path}", "measure=[ntg]",
                         "measure.ntg.launch=false"]) == 0
    assert report_main([str(tmp_path), "--ntg", "--metric", "target/test/accuracy"]) == 0
    out = capsys.readouterr().out
    rows = _ntg_rows(tmp_path)
    groups = {"dann": ("dann", "", ""), "source_only": ("source_only", "", ""),
              "finetune": ("target_only", "5", "set")}
    for kind, key in groups.items():
        measured = json.loads((runs[(kind, 0)] / "measures.json").read_text())
        for k in NTG_GROUP_KEYS:
            m, r = measured[k], rows[key][k]
            assert (r == "") if m is None else (r == str(m) if isinstance(m, str) else
                                                 float(r) == m), (kind, k, m, r)
    dann = rows[groups["dann"]]
    assert dann["ntg_mean"] == "" and dann["ntg_baseline"] == ntg.NO_LABELS
    gains = [sweep_accuracy("dann", s) - sweep_accuracy("source_only", s) for s in SEEDS]
    assert float(dann["ntg_adaptation_gain_mean"]) == pytest.approx(np.mean(gains), abs=1e-12)
    gaps = [sweep_accuracy("target_only_5", s) - sweep_accuracy("finetune", s) for s in SEEDS]
    assert float(rows[groups["finetune"]]["ntg_mean"]) == pytest.approx(np.mean(gaps), abs=1e-12)
    assert rows[("target_only", "", "")]["ntg_verdict"] == "baseline"
    dann_line = next(line for line in out.splitlines() if "| dann |" in line)
    assert "zero-label baseline (chance err 0.9):" in dann_line
    assert ntg.HELPS in dann_line and "negative transfer" not in dann_line


def test_ntg_duplicates_and_missing_references_are_named(tmp_path: Path, capsys) -> None:
    runs = make_sweep(tmp_path, kinds=("dann", "target_only"), seeds=(0, 1))
    # No source_only anywhere: dann's row says so, and is not compared with target_only.
    assert report_main([str(tmp_path), "--ntg"]) == 0
    captured = capsys.readouterr()
    assert "no source_only reference for seed(s) [0, 1]" in captured.err
    assert "python -m jtl.train" in captured.err
    dann = _ntg_rows(tmp_path)[("dann", "", "")]
    assert dann.get("ntg_mean", "") == "" and "missing" in dann["ntg_verdict"]
    # Two runs of one seed in a group: an error naming both dirs, from both entry points.
    shutil.copytree(runs[("dann", 1)], tmp_path / "again")
    make_sweep(tmp_path, kinds=("source_only",), seeds=(0, 1))
    assert report_main([str(tmp_path), "--ntg"]) == 2
    assert measure_main([f"run_dir={tmp_path}", "measure=[ntg]",
                         "measure.ntg.launch=false"]) == 2
    for err in capsys.readouterr().err.strip().splitlines():
        assert str(runs[("dann", 1)]) in err and str(tmp_path / "again") in err


def test_bounded_intervals_are_clipped_for_display_not_in_the_csv(tmp_path: Path) -> None:
    for seed, acc in enumerate((0.99, 1.0, 0.93)):
        write_run(tmp_path, str(seed), "dann", seed, acc=acc)
    rep = build_report(tmp_path, metrics=["target/test/accuracy"])
    mean, low, high = ci([0.99, 1.0, 0.93])
    assert high > 1
    row = rep.rows[0]
    assert row["target/test/accuracy/ci_high"] == pytest.approx(high)  # raw, recomputable
    assert f"{mean:.4g} [{low:.4g}, 1]" in rep.markdown
    means, err = error_bars(rep.rows, "target/test/accuracy")
    assert means[0] == pytest.approx(mean)
    assert err[:, 0] == pytest.approx([mean - low, 1.0 - mean])


def test_user_mistakes_exit_2_with_a_message(tmp_path: Path, grid: Path, capsys) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main([str(grid), "--by", "method.nope"]) == 2
    assert ("Varying keys: ['method.name', 'method.disc_norm', 'method.lambda_max']"
            in capsys.readouterr().err)
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no completed runs" in capsys.readouterr().err


def test_python_dash_m_entry_point(grid: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "jtl.report", str(grid), "--metric",
                           "target/test/accuracy"], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert "| method.name |" in proc.stdout
