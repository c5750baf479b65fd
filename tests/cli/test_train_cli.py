"""The CLI: a user mistake is one readable line and exit code 2, recorded in summary.json."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import FAST, ROOT


def test_unknown_model_is_one_clear_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jtl.train", *FAST, "model.name=nope", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "jtl: error: unknown model 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
    # A config mistake is caught by the schema before the run dir is claimed: nothing written.
    assert not (tmp_path / "summary.json").exists()


def test_cli_prints_both_accuracies(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jtl.train", *FAST, f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "source sklearn_digits test accuracy:" in proc.stdout
    assert "target sklearn_digits test accuracy:" in proc.stdout
    assert (tmp_path / ".hydra" / "config.yaml").exists()
