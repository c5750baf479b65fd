"""The completed summary describes the final state (issue 8, fourth bullet).

On the old main a run killed after its final checkpoint but before summary.json, whose
metrics.jsonl lost its last lines, reported step 80's accuracies as step 100 (or a
"completed" summary without accuracies). Now the final state is evaluated again.
"""

from __future__ import annotations

import json
import shutil

from jtl import rundir
from tests.conftest import compose_cfg
from tests.reliability.kit import ARGS, metric_steps, summary, without_time


def test_lost_metrics_lines_are_re_evaluated_from_the_final_checkpoint(reference, tmp_path):
    from jtl.train import train_and_evaluate

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / rundir.SUMMARY).unlink()  # killed after the last checkpoint, before the summary
    rows = (run / rundir.METRICS).read_text().splitlines()
    kept = [r for r in rows if json.loads(r)["step"] <= 30]
    (run / rundir.METRICS).write_text("\n".join(kept) + "\n")

    s = train_and_evaluate(compose_cfg(ARGS), run)
    ref = summary(reference)
    assert s["step"] == 40
    for key in ("source/test/accuracy", "target/test/accuracy", "target/test/loss"):
        assert s[key] == ref[key]  # the step-40 values, not step 30's or none
    assert metric_steps(run)[-1] == 40
    assert without_time(summary(run)) == without_time(s)
