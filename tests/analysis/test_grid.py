"""`jtl.load_grid` and the report figure it shares with `jtl.report`: per-run rows, groups
whose n counts distinct seeds, NTG as `jtl.measures` computes it, one panel per direction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from jtl.analysis import load_grid
from jtl.errors import JtlError
from jtl.measures.stats import mean_ci
from jtl.results.report import build_report, plot_groups, plot_layout
from tests.analysis.tiny import Study

ACC = "target/test/accuracy"


def accuracy(run: Path) -> float:
    return json.loads((run / "summary.json").read_text())[ACC]


def test_per_run_rows_are_the_summaries(tiny: Study):
    df = load_grid(tiny.grid)
    assert len(df) == 8 and df.attrs["keys"] == ["init_from", "target.per_class"]
    assert set(df["direction"]) == {"sklearn_digits → sklearn_digits"}
    for _, row in df.iterrows():
        assert row["seed"] in (0, 1)
        assert row[ACC] == accuracy(Path(row["run_dir"]))


def test_groups_give_ntg_paired_by_seed(tiny: Study):
    table = load_grid(tiny.grid, per="group", ntg=True, metrics=[ACC])
    tuned = table[table["init_from"] == "set"].set_index("target.per_class")
    assert sorted(tuned.index) == [3, 30] and (tuned["n"] == 2).all()
    for k in (3, 30):
        gaps = [(1 - accuracy(tiny.grid / "finetune" / f"pc{k}" / f"seed{s}"))
                - (1 - accuracy(tiny.grid / "baselines" / f"pc{k}" / f"seed{s}"))
                for s in (0, 1)]
        mean, low, high = mean_ci(gaps)
        assert tuned.loc[k, "ntg_mean"] == pytest.approx(mean, abs=1e-12)
        assert (tuned.loc[k, "ntg_ci_low"], tuned.loc[k, "ntg_ci_high"]) == pytest.approx(
            (low, high), abs=1e-12)
    with pytest.raises(JtlError, match="does not exist"):
        load_grid(tiny.grid / "nope")
    with pytest.raises(JtlError, match="per must be"):
        load_grid(tiny.grid, per="seed")


def write_run(root: Path, name: str, method: str, seed: int, src: str, tgt: str,
              acc: float, **method_keys) -> None:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    cfg = {"seed": seed, "method": {"name": method, **method_keys},
           "source": {"name": src}, "target": {"name": tgt, "per_class": None}}
    if method == "dann":  # a per_class sweep for dann only
        cfg["target"]["per_class"] = 10 if "small" in name else None
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "summary.json").write_text(json.dumps({"status": "completed", "step": 10,
                                                  "seed": seed, ACC: acc}))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """2 directions x {dann (disc_hidden), dann per_class=10, mdd (gamma)} x 3 seeds, plus a
    re-run of seed 0 for m2u dann."""
    for src, tgt in (("mnist", "usps"), ("usps", "mnist")):
        for s in range(3):
            write_run(tmp_path, f"{src}/dann/{s}", "dann", s, src, tgt, 0.8 + 0.01 * s,
                      disc_hidden=1024)
            write_run(tmp_path, f"{src}/dann_small/{s}", "dann", s, src, tgt, 0.6 + 0.02 * s,
                      disc_hidden=1024)
            write_run(tmp_path, f"{src}/mdd/{s}", "mdd", s, src, tgt, 0.7 - 0.01 * s,
                      gamma=4.0)
    write_run(tmp_path, "mnist/dann/0-again", "dann", 0, "mnist", "usps", 0.9,
              disc_hidden=1024)
    return tmp_path


def test_n_counts_distinct_seeds_and_repeats_of_a_seed_are_averaged(sweep: Path):
    rep = build_report(sweep, metrics=[ACC])
    row = next(r for r, g in zip(rep.rows, rep.groups, strict=True)
               if len(g.runs) == 4)
    per_seed = [(0.8 + 0.9) / 2, 0.81, 0.82]
    mean, low, high = mean_ci(per_seed)
    assert row["n"] == 3 and row[f"{ACC}/n"] == 3
    assert (row[f"{ACC}/mean"], row[f"{ACC}/ci_low"], row[f"{ACC}/ci_high"]) == pytest.approx(
        (mean, low, high))
    assert any("4 runs of 3 seeds" in w for w in rep.warnings)
    df = load_grid(sweep, per="group", metrics=[ACC])
    assert sorted(df["n"]) == [3] * 6
    assert set(df["direction"]) == {"mnist → usps", "usps → mnist"}


def test_figure_has_a_panel_per_direction_and_short_labels(sweep: Path, tmp_path: Path):
    rep = build_report(sweep, metrics=[ACC])
    panels = plot_layout(rep)
    assert [p.title for p in panels] == ["mnist → usps", "usps → mnist"]
    for p in panels:
        # mdd's gamma and dann's disc_hidden are its own keys: never on a label; per_class
        # tells dann's two bars apart.
        assert p.labels == ["dann\nper_class=none", "dann\nper_class=10", "mdd"]
        assert p.methods == ["dann", "dann", "mdd"]
    path = plot_groups(rep, ACC, tmp_path / "fig.png")
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"
    assert not math.isnan(np.sum([r[f"{ACC}/mean"] for r in rep.rows]))
