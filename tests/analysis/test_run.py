"""`jtl.load_run`: the restored network is the run's, its records read back, mistakes named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import jtl
from jtl.analysis import load_run
from jtl.errors import JtlError
from jtl.models.base import path_str
from tests.analysis.tiny import Study


def flat(tree) -> dict[str, np.ndarray]:
    return {path_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def saved_params(run_dir: Path, step: int) -> dict[str, np.ndarray]:
    """The checkpoint's parameters read by orbax directly, not through jtl."""
    with ocp.CheckpointManager((run_dir / "checkpoints").resolve()) as mngr:
        return flat(mngr.restore(step)["params"])


def test_final_params_equal_the_saved_state_and_predict_reproduces_the_summary(tiny: Study):
    run = jtl.load_run(tiny.source)  # the lazy top-level export
    summary = json.loads((tiny.source / "summary.json").read_text())
    assert run.step == summary["step"] == 100
    mine, saved = flat(run.params), saved_params(tiny.source, 100)
    assert mine.keys() == saved.keys()
    for k in saved:
        np.testing.assert_array_equal(mine[k], saved[k])
    fresh = flat(run.initial_params())  # restoring changed something: training moved them
    assert any(not np.array_equal(fresh[k], mine[k]) for k in mine)
    for domain in ("source", "target"):
        pred = run.predict(domain, "test")
        acc = float(np.mean(pred == run.data(domain, "test").y))
        assert acc == pytest.approx(summary[f"{domain}/test/accuracy"], abs=1e-9)
    assert run.features("target", "test", "backbone/blocks/0").shape == (
        len(run.target.test), 64)
    assert run.features("source", "val", "probs").sum(1) == pytest.approx(1.0, abs=1e-5)


def test_every_kept_step_and_best_reproduce_their_logged_accuracy(tiny: Study):
    run = load_run(tiny.adapted)
    assert run.steps() == [20, 40, 60, 80, 100]
    df = run.metrics()
    evals = df.dropna(subset=["target/test/accuracy"]).set_index("step")
    assert list(evals.index) == [20, 40, 60, 80, 100]
    for step in (20, 60):
        assert run.at(step).accuracy("target") == pytest.approx(
            evals.loc[step, "target/test/accuracy"], abs=1e-9)
    best = load_run(tiny.adapted, step="best")
    summary = run.summary()
    assert best.step == summary["selected/val/step"]
    assert best.accuracy("target") == pytest.approx(
        summary["selected/val/target/test/accuracy"], abs=1e-9)
    assert run.measures() == {}


def test_missing_dir_no_checkpoint_and_bad_steps_are_clear_errors(tiny: Study, tmp_path: Path):
    with pytest.raises(JtlError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(JtlError, match="not a jtl run dir"):
        load_run(tmp_path)
    empty = tmp_path / "empty"
    shutil.copytree(tiny.source / ".hydra", empty / ".hydra")
    with pytest.raises(JtlError, match="holds no checkpoint"):
        load_run(empty)
    assert not (empty / "checkpoints").exists()  # looking did not create it
    with pytest.raises(JtlError, match=r"no checkpoint at step 7; it has \[20, 40, 60, 80, 100\]"):
        load_run(tiny.source, step=7)
    with pytest.raises(JtlError, match="'final', 'best' or a checkpoint step"):
        load_run(tiny.source, step="last")
    copy = tmp_path / "copy"
    shutil.copytree(tiny.source, copy)
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "selected/val/step": 30}))
    with pytest.raises(JtlError, match=r"best step 30 .* was not kept"):
        load_run(copy, step="best")
    with pytest.raises(JtlError, match="domain must be one of"):
        load_run(tiny.source).data("middle", "test")


def test_import_jtl_stays_cheap():
    """`jtl.load_run` / `jtl.load_grid` are imported on first use, not by `import jtl`."""
    import subprocess
    import sys

    code = ("import sys, jtl; assert 'jax' not in sys.modules and 'pandas' not in sys.modules;"
            " assert callable(jtl.load_grid) and 'jtl.analysis' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
