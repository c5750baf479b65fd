"""Orbax checkpoints: resume a run in its own dir, or start from another run's parameters."""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jtl import rundir
from jtl.errors import JtlError
from jtl.models.base import path_str

log = logging.getLogger("jtl")


def manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        directory.resolve(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
    )


def run_manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """The manager a run saves into, once `directory` is known to be a writable folder.

    orbax would find a file there, or a folder it cannot write, only at the first save, in
    its background threads; this says so in one line before any step."""
    check_writable(directory)
    _quiet_background_errors()
    return manager(directory, max_to_keep)


def check_writable(directory: Path) -> None:
    """Make `directory` (a run's checkpoints/) and write a file in it, or fail in one line."""
    if directory.exists() and not directory.is_dir():
        raise JtlError(f"{directory} is a file, not a folder: jtl saves the run's checkpoints "
                       "there. Move that file away, or choose another hydra.run.dir=...")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".jtl-write-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
        return
    except OSError as e:
        cause = rundir.os_cause(e)
        if cause is None:
            raise
    # Raised outside the handler: nothing chained for `rundir.claim` to re-word by the run dir.
    raise rundir.os_error(cause, directory)


def finish_or_abandon(managers: list[Any], timeout: float = 20.0) -> None:
    """On an error: let the saves in flight finish (good checkpoints written before the error,
    e.g. the last one before a divergence), then end whatever a failed save left waiting
    (`abandon_saves`), so the process can exit. Waits at most `timeout` seconds."""
    done = threading.Event()

    def wait() -> None:
        try:
            for m in managers:
                if m is not None:
                    m.wait_until_finished()
        except Exception as e:  # the failed save itself: its error is the run's already
            log.debug("a checkpoint save failed while the run ended: %s", e)
        finally:
            done.set()

    threading.Thread(target=wait, name="jtl-finish-saves", daemon=True).start()
    done.wait(timeout)
    abandon_saves()


def abandon_saves(timeout: float = 10.0) -> int:
    """End the background threads a failed save leaves waiting; returns how many there were.

    When one part of an orbax save fails (creating its folder, writing an array), the threads
    of the other parts wait for signals that part never sends, for orbax's coordination
    timeout (300 s); they are not daemons, so the process cannot exit before. Each is
    cancelled and sent the signals it waits for, so it ends without writing. Call this only
    when the save is given up (the run ends in an error)."""
    try:
        from orbax.checkpoint._src.futures import future as ocp_future

        kind = ocp_future._SignalingThread
    except (ImportError, AttributeError):  # another orbax: its threads end by its own timeout
        return 0
    waiting = [t for t in threading.enumerate() if isinstance(t, kind) and t.is_alive()]
    for t in waiting:
        t.cancel()
    for t in waiting:
        try:
            ocp_future.set_signals(t._receive_signals, operation_id=t._operation_id)
        except Exception as e:  # the thread then ends by orbax's own timeout
            log.debug("could not wake orbax thread %s: %s", t.name, e)
    deadline = time.monotonic() + timeout
    for t in waiting:
        threading.Thread.join(t, max(0.0, deadline - time.monotonic()))
        if not t.is_alive():
            _close_coroutines(getattr(t, "_target", None))
    return len(waiting)


def _close_coroutines(fn: Any, depth: int = 3) -> None:
    """Close the never-started coroutines a cancelled thread's target holds, which would
    print `RuntimeWarning: coroutine ... was never awaited` when collected."""
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if inspect.iscoroutine(value):
            _close(value, depth)
        elif inspect.isfunction(value) and depth:
            _close_coroutines(value, depth - 1)


def _close(coro: Any, depth: int) -> None:
    """Close a coroutine and, first, the unstarted ones it was given as arguments."""
    frame = coro.cr_frame if inspect.getcoroutinestate(coro) == "CORO_CREATED" else None
    for value in (frame.f_locals.values() if frame is not None and depth else ()):
        for v in value if isinstance(value, list | tuple) else (value,):
            if inspect.iscoroutine(v):
                _close(v, depth - 1)
    coro.close()


class _ReportedByJtl(logging.Filter):
    """orbax logs a failed background save, with its traceback, once from each of its threads
    before the main thread raises it, where jtl reports it in one line (a disk-full save: ~300
    lines): those records stay out of the console; the run's log file keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and record.exc_info
                    and f"{os.sep}orbax{os.sep}" in record.pathname)


def _quiet_background_errors() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and \
                not isinstance(handler, logging.FileHandler) and \
                not any(isinstance(f, _ReportedByJtl) for f in handler.filters):
            handler.addFilter(_ReportedByJtl())


def fail_next_write() -> None:
    """Test hook (`JTL_FAULT=enospc@N`): the next array orbax writes fails as tensorstore's
    write fails on a full disk, with the ValueError it raises there (not an OSError), inside
    orbax's own background save; later writes succeed again."""
    from orbax.checkpoint._src.serialization import serialization

    write = serialization.async_serialize_from_host

    async def full(*args: Any, **kwargs: Any) -> None:
        serialization.async_serialize_from_host = write
        spec = json.dumps(args[1] if len(args) > 1 else kwargs.get("tensorstore_spec"),
                          default=str)
        where = next(iter(re.findall(r'"(?:path|base)": "(?:file://)?([^"]+)"', spec)), "?")
        raise ValueError(
            f'RESOURCE_EXHAUSTED: Error writing "x/0" in OCDBT database at local file '
            f'"{where}": Failed writing: "{where}/d/0": Failed to write 4096 bytes to file 6: '
            "No space left on device [os_error_code='28'] (injected)")

    serialization.async_serialize_from_host = full


def _finite(tree: Any) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.inexact))


def restore_latest(mngr: ocp.CheckpointManager, state: Any) -> Any | None:
    """The newest *valid* saved state, shaped like `state`; None for a fresh run dir.

    A checkpoint that cannot be read (truncated by a crash mid-write, a bad disk) or holds
    non-finite values is reported in one line and moved to `checkpoints.corrupt/`, and the
    next older one is tried, so one bad file costs at most a checkpoint interval.
    """
    ckpt_dir = Path(mngr.directory)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            restored = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
            why = None if _finite(restored) else "it holds non-finite values"
        except Exception as e:  # orbax raises many types for a damaged checkpoint
            restored, why = None, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        if why is None:
            return restored
        if jax.process_index() != 0:  # in a distributed run, process 0 moves it aside
            log.warning("checkpoint at step %d is unreadable (%s)", step, why)
            continue
        aside = ckpt_dir.parent / "checkpoints.corrupt" / f"{step}.{int(time.time())}"
        aside.parent.mkdir(exist_ok=True)
        os.replace(ckpt_dir / str(step), aside)
        mngr.reload()
        log.warning("checkpoint at step %d is unreadable (%s); moved it to %s and resuming from "
                    "the previous one", step, why, aside)
    return None


def _flat(tree: Any) -> dict[str, Any]:
    return {path_str(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def loads(path: str, load: str = ".*", dont_load: str | None = None) -> bool:
    """Whether `init_from` replaces the parameter at `path`: it matches `load` and not
    `dont_load` (whole-path regexes)."""
    return bool(re.fullmatch(load, path)) and not (dont_load and re.fullmatch(dont_load, path))


def load_params(run_dir: str | Path, params: Any, load: str = ".*",
                dont_load: str | None = None, step: int | None = None) -> tuple[Any, list[str]]:
    """Replace the parameters of `params` whose path matches `load` and not `dont_load` by
    those of `run_dir`'s checkpoint at `step` (its completed step unless asked; an unfinished
    run is refused), as big_vision's `init`/`dont_load`."""
    ckpt_dir = Path(run_dir) / rundir.CHECKPOINTS
    if not ckpt_dir.is_dir():
        raise JtlError(f"init_from={run_dir}: no checkpoints/ folder there. Point init_from at "
                       "a jtl run dir (the one holding summary.json).")
    step = rundir.require_completed(run_dir, step, "init_from")
    with manager(ckpt_dir) as mngr:
        if step not in mngr.all_steps():
            raise JtlError(f"init_from={run_dir}: no checkpoint at step {step}; it has "
                           f"{sorted(mngr.all_steps())} (set init_from_step=...)")
        try:
            saved = _flat(mngr.restore(step)["params"])
        except Exception as e:
            raise JtlError(f"init_from={run_dir}: the checkpoint at step {step} is unreadable "
                           f"({type(e).__name__}); retrain that run") from e
    loaded = []

    def pick(path, value):
        p = path_str(path)
        if not loads(p, load, dont_load):
            return value
        if p not in saved:
            raise JtlError(f"init_from={run_dir} has no parameter '{p}'; exclude it with "
                           f"dont_load='{p.split('/')[0]}/.*' or choose a run of the same model")
        if saved[p].shape != value.shape:
            raise JtlError(
                f"init_from: '{p}' has shape {saved[p].shape} there and {value.shape} here "
                f"(a different class count?). Replace the head with dont_load='head/.*'.")
        loaded.append(p)
        return np.asarray(saved[p], dtype=value.dtype)

    new = jax.tree_util.tree_map_with_path(pick, params)
    if not loaded:
        raise JtlError(f"init_from={run_dir}: load='{load}' dont_load='{dont_load}' matched no "
                       "parameter")
    return new, loaded
