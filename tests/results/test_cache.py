"""The one find-or-train cache: its own dir first, else the one run found; trained once under
a lock while other callers wait; and the layouts the two caches had before it (a fixture
written by that code) are found as they lie, nothing retrained."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from jtl import rundir
from jtl.errors import JtlError
from jtl.results.cache import RunCache
from tests.conftest import FAST

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_caches_3bca78e"
# What tests/fixtures/make_old_caches.py trained on top of FAST.
RUN = ["trainer.steps=20", "trainer.eval_every=10", "trainer.checkpoint_every=20",
       "trainer.log_every=10", "trainer.keep_checkpoints=1", "model.hidden=[8]"]


def completed(run: Path, key: str) -> Path:
    """A completed run dir whose saved config has key `key` (nothing trained)."""
    rundir.save_config(run, {"k": key})
    rundir.record_completed(run, {"status": "completed"})
    return run


def cache(root: Path, search: tuple[Path, ...] = ()) -> RunCache:
    return RunCache(root, lambda cfg: cfg.get("k"), lambda k: (root / k, root / f".{k}.lock"),
                    search, describe=lambda k: f"the run of {k}")


def never(run_dir: Path) -> None:
    pytest.fail(f"trained {run_dir}")


def test_the_own_dir_first_else_the_one_found_else_none(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    elsewhere = completed(tmp_path / "sweep" / "a" / "0", "a")
    c = cache(root, (tmp_path / "sweep",))
    assert c.find("a") == elsewhere and c.find("b") is None
    assert c.get("a", never) == elsewhere
    completed(root / "a", "a")  # the cache's own dir wins over a copy elsewhere
    assert cache(root, (tmp_path / "sweep",)).find("a") == root / "a"


def test_two_runs_of_one_key_are_an_error_naming_both(tmp_path: Path) -> None:
    one, two = (completed(tmp_path / "cache" / name, "a") for name in ("x", "y"))
    with pytest.raises(JtlError, match=rf"{one} and {two} are both the run of a; keep one"):
        cache(tmp_path / "cache").find("a")


def test_unfinished_and_damaged_runs_are_passed_over(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    rundir.save_config(root / "unfinished", {"k": "a"})
    damaged = completed(root / "damaged", "a")
    (damaged / rundir.CONFIG).write_text("k: [unclosed\n")
    assert cache(root).find("a") is None


def test_a_missing_run_is_trained_once_while_other_callers_wait(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    trained: list[Path] = []

    def train(run_dir: Path) -> None:
        trained.append(run_dir)
        time.sleep(0.3)  # the other caller reaches the lock meanwhile
        completed(run_dir, "a")

    got: list[Path] = []
    callers = [threading.Thread(target=lambda: got.append(cache(root).get("a", train)))
               for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert trained == [root / "a"] and got == [root / "a"] * 2
    assert cache(root).get("a", never) == root / "a"


def test_a_train_that_leaves_no_run_of_the_key_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    with pytest.raises(JtlError, match=r"\(the run of a\) did not complete; see its summary"):
        cache(root).get("a", lambda run_dir: None)
    with pytest.raises(JtlError, match="holds a run of another config; delete that dir"):
        cache(root).get("a", lambda run_dir: completed(run_dir, "b"))


def test_a_pretraining_run_cached_by_the_old_code_is_found(tmp_path: Path) -> None:
    from jtl.transfer import pretrain

    root = tmp_path / "pretrain"
    shutil.copytree(FIXTURE / "pretrain", root)
    (old,) = (p for p in root.iterdir() if not p.name.startswith("."))
    paths = {"pretrain_dir": str(root)}
    assert pretrain.ensure_pretrained([*FAST, *RUN], 0, paths, lambda *a: never(a[1])) == old
    cfg = {"pretrain": [*FAST, *RUN], "seed": 0, "paths": paths}
    assert pretrain.resolve(cfg, lambda *a: never(a[1]))["init_from"] == str(old)


def test_a_baseline_cached_by_the_old_code_is_found(tmp_path: Path) -> None:
    from jtl.results.baselines import NtgOptions, negative_transfer
    from jtl.results.report import build_report

    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE / "sweep", sweep)
    (old,) = (sweep / "baselines" / "source_only").glob("*/seed0")
    assert (old.parent / "key.json").is_file()
    result = negative_transfer([sweep / "dann"], NtgOptions(), sweep / "baselines",
                               launcher=lambda overrides, run_dir: never(run_dir))
    assert result.launched == []
    assert result.values[sweep / "dann"]["ntg_source_only_dir"] == str(old)
    rep = build_report(sweep / "dann", ntg=True, baselines_dir=sweep / "baselines")
    assert "ntg_adaptation_gain_mean" in rep.rows[0]
