"""Model selection over evaluation records (jtl/train/selection.py): each rule on hand-made
records, and `jtl.report` reading a run the same way as its summary does."""

from __future__ import annotations

import json

import pytest

from jtl.errors import JtlError
from jtl.train.selection import choose, choose_across, missing_choices, summary_keys

RECORDS = [
    {"step": 10, "train/loss": 1.0},  # a log row: not an evaluation
    {"step": 20, "source/val/accuracy": 0.9, "target/val/accuracy": 0.2,
     "target/test/accuracy": 0.50, "dev/risk": 0.7},
    {"step": 40, "source/val/accuracy": 0.95, "target/val/accuracy": 0.3,
     "target/test/accuracy": 0.40, "dev/risk": float("nan")},
    {"step": 60, "source/val/accuracy": 0.95, "target/val/accuracy": 0.1,
     "target/test/accuracy": 0.60, "dev/risk": 0.5, "dev/ess": 0.2},
]


def test_each_rule_picks_by_its_own_number_earliest_on_ties():
    assert choose(RECORDS, "val")["step"] == 40  # 0.95 at 40 and 60: the earliest
    assert choose(RECORDS, "val", labeled="target")["step"] == 40
    assert choose(RECORDS, "oracle")["step"] == 60
    assert choose(RECORDS, "dev")["step"] == 60  # the NaN risk is passed over
    assert choose(RECORDS[:1], "val") is None
    with pytest.raises(JtlError, match="selection rule"):
        choose(RECORDS, "lodo")


def test_summary_keys_name_the_split_and_fall_back_to_the_final_step():
    keys = summary_keys(RECORDS, "source", RECORDS[-1], 60, None)
    assert keys["selected/val/split"] == "source/val"
    assert keys["selected/val/target/test/accuracy"] == 0.40
    assert keys["selected/oracle/step"] == 60 and keys["selected/dev/ess"] == 0.2
    no_val = [{"step": 5, "target/test/accuracy": 0.3}]
    keys = summary_keys(no_val, "source", no_val[0], 5, None)
    assert keys["selected/val/split"].startswith("none") and keys["selected/val/step"] == 5


def test_the_report_fills_in_rules_a_summary_lacks_from_the_records(tmp_path):
    """A run summarised without selection keys (an older run) gets them from metrics.jsonl,
    chosen by the same rules as a new summary."""
    from jtl.results.report import load_runs

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    (run / "summary.json").write_text(json.dumps(
        {"status": "completed", "seed": 0, "method": "dann", "target/test/accuracy": 0.6}))
    assert missing_choices(run, {"selected/val/target/test/accuracy": 0.4}) == {
        "selected/oracle/target/test/accuracy": 0.60,
        "selected/dev/target/test/accuracy": 0.60}
    runs, _ = load_runs(tmp_path)
    assert runs[0].metrics["selected/val/target/test/accuracy"] == 0.40
    assert runs[0].metrics["selected/oracle/target/test/accuracy"] == 0.60


def test_eval_rule_chooses_by_the_held_out_domains_and_across_runs_by_the_mean():
    """DomainBed's leave-one-domain-out: within a run, the step of best held-out (eval)
    domain accuracy; across configurations, the one whose runs score best on average."""
    def run(scores, tests):
        return [{"step": 10 * (i + 1), "target/test/accuracy": t,
                 "eval/mnist/test/accuracy": a, "eval/usps/test/accuracy": a}
                for i, (a, t) in enumerate(zip(scores, tests, strict=True))]

    h = run([0.5, 0.8, 0.7], [0.1, 0.2, 0.9])
    assert choose(h, "eval")["step"] == 20
    assert summary_keys(h, "source", h[-1], 30, None)["selected/eval/target/test/accuracy"] == 0.2
    assert choose(RECORDS, "eval") is None
    lr_a = [run([0.6, 0.7], [0.3, 0.4]), run([0.9, 0.5], [0.6, 0.1])]  # chosen 0.7, 0.9
    lr_b = [run([0.75, 0.7], [0.5, 0.5]), run([0.8, 0.8], [0.7, 0.2])]  # chosen 0.75, 0.8
    cfg, score, test = choose_across({"lr=a": lr_a, "lr=b": lr_b}, "eval")
    assert cfg == "lr=a" and score == pytest.approx(0.8) and test == pytest.approx(0.5)
    with pytest.raises(JtlError, match="cannot read"):
        choose_across({"lr=a": [RECORDS]}, "eval")
