"""Mistakes are one line and exit 2, before any work (issue 8, last bullet).

On the old main each of these printed a traceback (val_fraction=0 only after training up to
the first evaluation).
"""

from __future__ import annotations

import pytest

from tests.reliability.kit import ARGS, cli, summary


@pytest.mark.parametrize(("override", "says"), [
    ("trainer.steps=abc", "trainer.steps='abc': must be an integer >= 1"),
    ("trainer.steps=0", "trainer.steps=0: must be an integer >= 1"),
    ("trainer.steps=-5", "trainer.steps=-5"),
    ("trainer.batch_size=0", "trainer.batch_size=0"),
    ("trainer.log_every=0", "trainer.log_every=0"),
    ("trainer.eval_every=2.5", "trainer.eval_every=2.5"),
    ("source.val_fraction=1.5", "source.val_fraction=1.5: must be a number >= 0 and < 1"),
    ("load='backbone/(['", "load='backbone/([' is not a valid regex"),
    ("freeze='*'", "freeze='*' is not a valid regex"),
    ("trainer.batch_size=5000", "larger than the source train split"),
    ("method=nope", "Could not find 'method/nope' (available: "),
    ("trainer.nosuchkey=1", "Could not override 'trainer.nosuchkey'"),
    ("hydra.run.dir=/sys/jtl-run", "cannot write in /sys/jtl-run"),
])
def test_one_line_and_exit_2(override, says, tmp_path, monkeypatch, capsys):
    args = [*ARGS, f"hydra.run.dir={tmp_path / 'run'}", override]
    code, _, err = cli(args, monkeypatch, capsys)
    assert code == 2, err
    assert err.startswith("jtl: error: ") and err.count("\n") == 1, err
    assert says in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    from jtl.errors import JtlError

    with pytest.raises(JtlError):
        cli([*ARGS, "trainer.steps=0", "debug=true", f"hydra.run.dir={tmp_path}"],
            monkeypatch, capsys)


def test_val_fraction_zero_is_explicit_no_validation(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    code, _, err = cli([*ARGS, "source.val_fraction=0", f"hydra.run.dir={run}"], monkeypatch,
                       capsys)
    assert code == 0, err
    s = summary(run)
    assert s["selected/val/split"].startswith("none") and s["selected/val/step"] == 40
    assert s["selected/val/target/test/accuracy"] == s["target/test/accuracy"]
    assert "source/val/accuracy" not in s
