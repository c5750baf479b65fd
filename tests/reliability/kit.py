"""Shared tools of the reliability tests: the CLI run in this process (no interpreter start)
or as a child process, tiny configs, and checkpoint readers."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
from hydra.core.global_hydra import GlobalHydra

from tests.conftest import FAST, ROOT

# 40 steps, a checkpoint and an evaluation every 20: faults land at known steps.
ARGS = [*FAST, "trainer.steps=40", "trainer.eval_every=20", "trainer.checkpoint_every=20",
        "trainer.log_every=10", "seed=3"]


def cli(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """`python -m jtl.train ARGS` in this process: (exit code, stdout, stderr)."""
    from jtl.cli import train as cli_train

    GlobalHydra.instance().clear()
    # Hydra's logging setup would point handlers at this test's captured (soon closed) streams.
    quiet = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", ["jtl.train", *args, *quiet])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # main() sets it; restored after the test
    monkeypatch.setattr(cli_train, "FAILED_JOBS", [], raising=False)
    monkeypatch.setattr(cli_train, "RUN_ERROR", [], raising=False)
    capsys.readouterr()
    handlers = logging.root.handlers[:]  # Hydra points handlers at this test's captured streams
    try:
        cli_train.main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        GlobalHydra.instance().clear()
        for h in logging.root.handlers:
            if h not in handlers:
                h.close()
        logging.root.handlers = handlers
    out = capsys.readouterr()
    return code, out.out, out.err


def child(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """`python -m jtl.train ARGS` as a child process (for SIGKILL)."""
    return subprocess.run([sys.executable, "-m", "jtl.train", *args], cwd=ROOT,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **env},
                          capture_output=True, text=True, timeout=300)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def without_time(s: dict) -> dict:
    return {k: v for k, v in s.items() if k != "wall_time_s"}


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())


def params_at(run_dir: Path, step: int | None = None):
    from jtl.train.checkpoint import manager

    with manager(run_dir / "checkpoints") as m:
        return m.restore(m.latest_step() if step is None else step)["params"]


def assert_same_params(a, b) -> None:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def metric_steps(run_dir: Path) -> list[int]:
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(r)["step"] for r in rows]


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A real small filesystem mounted at `path` while the block runs (root on Linux only:
    the test is skipped where mounting is not allowed, as in an unprivileged CI)."""
    import pytest

    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    """Change a `tmpfs` mount's options (`size=64m`: free space; `ro`: read-only)."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def npz_domain(tmp_path: Path, arrays: dict, role: str = "", shape: tuple = (8, 8, 1),
               **cfg: object):
    """`arrays` saved as tmp_path/d.npz and built as an npz domain, as the trainer builds it."""
    from jtl.domains.base import LoadContext, build_domain

    np.savez(tmp_path / "d.npz", **arrays)
    return build_domain({"name": "npz", "path": str(tmp_path / "d.npz"), **cfg}, shape,
                        LoadContext(data_dir=tmp_path, tfds_dir=tmp_path / "tfds"), role=role)


def npz_error(tmp_path: Path, arrays: dict, role: str = "", **cfg: object) -> str:
    """The one-line JtlError building that domain gives; it names the domain and the file."""
    import pytest

    from jtl.errors import JtlError

    with pytest.raises(JtlError) as e:
        npz_domain(tmp_path, arrays, role, **cfg)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "d.npz") in msg, msg
    assert (f"{role} domain 'npz'" if role else "npz") in msg, msg
    return msg
