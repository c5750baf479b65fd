"""A run's inputs in its identity (issue 21): a user's data file and `init_from`'s checkpoint
are recorded by content (`jtl.inputs`), their paths resolved once, absolutely, and saved, so a
changed input refuses to resume like a changed config and a reader of the run reads the file
it was trained on. Runs on the built-in (checksummed) data sets keep their fingerprint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from sklearn.datasets import load_digits

from jtl import rundir
from jtl.errors import JtlError
from tests.conftest import FAST, compose_cfg
from tests.reliability.kit import ARGS, cli, summary, without_time

# Short runs: a checkpoint at step 10 is what a killed run leaves.
SHORT = ["trainer.steps=10", "trainer.eval_every=10", "trainer.checkpoint_every=10",
         "trainer.log_every=10"]
# rundir.fingerprint of the default config (mnist -> usps, lenet, source_only, adam) as the
# main before inputs were recorded saved it: built-in data sets add nothing to the identity.
DEFAULT_FINGERPRINT = "cf44f5d1b819aefc"


def _npz(path: Path, scale: float = 1.0) -> Path:
    d = load_digits()
    np.savez(path, x=(d.images / 16 * scale).astype(np.float32), y=d.target)
    return path


def _killed(run: Path) -> None:
    """What a run killed after its last checkpoint leaves: checkpoints, no completed result."""
    (run / rundir.SUMMARY).unlink()
    assert rundir.status(run) == "running"


def test_builtin_domains_keep_their_fingerprint() -> None:
    from jtl import inputs

    cfg = OmegaConf.to_container(compose_cfg([]), resolve=True)
    assert inputs.record(cfg) == cfg  # nothing to record: offline data is checksummed
    assert rundir.fingerprint(cfg) == DEFAULT_FINGERPRINT


def test_npz_rewritten_under_a_killed_run_is_refused(tmp_path, monkeypatch, capsys):
    data = _npz(tmp_path / "t.npz")
    args = [*ARGS, "domain@target=npz", f"target.path={data}", f"hydra.run.dir={tmp_path / 'r'}"]
    monkeypatch.setenv("JTL_FAULT", "sigint@30")
    assert cli(args, monkeypatch, capsys)[0] == 130
    monkeypatch.delenv("JTL_FAULT", raising=False)  # the hook removes it once fired
    _npz(data, scale=0.5)  # another data set under the same name
    code, _, err = cli(args, monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "inputs.target.path" in err
    assert rundir.status(tmp_path / "r") == "running"  # nothing resumed, nothing replaced
    _npz(data)  # the file it was trained on, rewritten (another mtime, the same content)
    code, _, err = cli(args, monkeypatch, capsys)
    assert code == 0, err


def test_replaced_init_from_source_is_refused(fast_cfg, tmp_path):
    from jtl.train import train_and_evaluate

    src, dst = tmp_path / "src", tmp_path / "dst"
    train_and_evaluate(fast_cfg(*SHORT), src)
    transfer = fast_cfg(*SHORT, "method=target_only", f"init_from={src}",
                        "dont_load=head/.*")
    train_and_evaluate(transfer, dst)
    saved = rundir.load_config(dst)
    assert saved["init_from"] == str(src) and saved["inputs"]["init_from"].startswith("sha256:")
    assert train_and_evaluate(saved, dst)["status"] == "completed"  # its own saved config
    _killed(dst)
    train_and_evaluate(fast_cfg(*SHORT, "seed=7", "overwrite=true"), src)  # replaced there
    with pytest.raises(JtlError, match=r"differing keys: inputs\.init_from"):
        train_and_evaluate(transfer, dst)


def test_relative_path_is_saved_absolute_and_read_from_there(tmp_path, monkeypatch):
    """`jtl.measure` from another directory once read the relative `target.path` there."""
    from jtl.train import train_and_evaluate
    from jtl.train.runs import load_run

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _npz(tmp_path / "a" / "t.npz")
    monkeypatch.chdir(tmp_path / "a")
    run = tmp_path / "run"
    train_and_evaluate(compose_cfg([*FAST, *SHORT, "domain@target=npz",
                                    "target.path=t.npz"]), run)
    assert rundir.load_config(run)["target"]["path"] == str(tmp_path / "a" / "t.npz")
    monkeypatch.chdir(tmp_path / "b")
    d = load_digits()
    np.savez("t.npz", x=(d.images[:500] / 16).astype(np.float32), y=d.target[:500])
    assert len(load_run(run).target.test) == round(len(d.target) * 0.2)  # a's, not b's
    _npz(tmp_path / "a" / "t.npz", scale=0.5)
    with pytest.raises(JtlError, match="changed since"):
        load_run(run)
    from jtl.cli.measure import main

    assert main([f"run_dir={run}", "measure=[coral]"]) == 2
    assert not (run / rundir.MEASURES).exists()


def test_a_run_saved_before_inputs_were_recorded_reopens_as_completed(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    _npz(tmp_path / "t.npz")
    args = [*FAST, *SHORT, "domain@target=npz", "target.path=t.npz",
            f"hydra.run.dir={tmp_path / 'r'}"]
    assert cli(args, monkeypatch, capsys)[0] == 0
    before = summary(tmp_path / "r")
    path = tmp_path / "r" / rundir.CONFIG
    old = OmegaConf.to_container(OmegaConf.load(path))
    del old["inputs"], old[rundir.VERSION_KEY]
    old["target"]["path"] = "t.npz"  # as the main before this change saved it
    path.write_text(OmegaConf.to_yaml(old))
    loaded = rundir.load_config(tmp_path / "r")
    assert loaded["target"]["path"] == str(tmp_path / "t.npz") and "inputs" in loaded
    code, _, err = cli(args, monkeypatch, capsys)
    assert code == 0, err
    assert without_time(summary(tmp_path / "r")) == without_time(before)  # not retrained


def test_a_dap_table_given_as_a_path_is_recorded_a_named_one_is_not(tmp_path, monkeypatch):
    from jtl import inputs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("names: [a]\ncodes: [[0], [1]]\n")
    out = inputs.record({"method": {"name": "dap", "attributes": "mine.yaml"}})
    assert out["method"]["attributes"] == str(tmp_path / "mine.yaml")
    assert out["inputs"]["method.attributes"].startswith("sha256:")
    named = {"method": {"name": "dap", "attributes": "seven_segment"}}
    assert inputs.record(named) == named  # a table in conf/, part of jtl


def test_a_folder_is_hashed_by_its_files(tmp_path):
    """For folder inputs (image folders, checkpoints): names and contents, nothing else."""
    from jtl import inputs

    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.png").write_bytes(b"1")
    (tmp_path / "d" / "sub" / "b.png").write_bytes(b"2")
    first = inputs.content_hash(tmp_path / "d")
    (tmp_path / "d" / "sub" / "b.png").write_bytes(b"2")  # rewritten, same content
    assert inputs.content_hash(tmp_path / "d") == first
    (tmp_path / "d" / "sub" / "b.png").write_bytes(b"3")
    assert inputs.content_hash(tmp_path / "d") != first
