"""The run directory contract: the one module that names, reads, writes and locks a run's files.

A run dir holds

    .hydra/config.yaml   the composed config (written by jtl, after the identity check)
    .hydra/overrides.yaml  the command-line overrides, for the record (CLI runs only)
    metrics.jsonl        one JSON row per log/eval step
    checkpoints/         orbax checkpoints of the training state
    summary.json         status (running | completed | failed) and the final numbers
    failed.json          the last failure of a re-run that must not overwrite a completed summary
    measures.json        measure values, each with the checkpoint step it was taken at
    .jtl.lock            held (flock) by the one process training in this dir

A run's *identity* is its config minus the keys that do not change its result
(`PRESENTATION_KEYS`); its fingerprint is a hash of that. A dir resumes only a run of the same
identity. Everything else in jtl asks this module instead of spelling file names.

Nothing is written through a symlink in a run dir or cache: the lock and the appended files
(metrics.jsonl, the job log) are opened with O_NOFOLLOW and a link is refused in one line;
atomic writes `os.replace` a link itself, never its target.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from jtl.errors import JtlError

CONFIG = Path(".hydra") / "config.yaml"
OVERRIDES = Path(".hydra") / "overrides.yaml"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
SUMMARY = "summary.json"
FAILED = "failed.json"
MEASURES = "measures.json"
LOCK = ".jtl.lock"
# In a sweep dir: one JSON line per failed job, appended by the job wherever it runs (a
# joblib worker, a SLURM node), read by the process that launched the sweep.
SWEEP_FAILURES = "failed_jobs.jsonl"
# measures.json: {measure key: value, ..., STEPS_KEY: {measure key: checkpoint step}}.
STEPS_KEY = "_steps"

# Config keys (dotted; a prefix covers its subtree) that never change a run's result: how it is
# shown, where data lives (checksummed), when it is logged or checkpointed, what is measured
# after training. `trainer.eval_every` is *not* here: it decides which evaluations model
# selection picks from.
PRESENTATION_KEYS = (
    "hydra", "paths", "measure", "debug", "overwrite", "config_version",
    "trainer.progress", "trainer.tensorboard", "trainer.log_every", "trainer.checkpoint_every",
    "trainer.keep_checkpoints", "trainer.data_on_device",
    # The device count and the convolution's implementation (im2col or XLA's, one function)
    # change float rounding only, as another machine does.
    "trainer.mesh", "model.conv_impl",
)
# Values that mean "this feature is not used": a key at such a value is left out of the
# identity, so adding a feature (a key with a neutral default) does not orphan the run dirs
# made before it existed. null is neutral everywhere; these are the other neutral values.
NEUTRAL_VALUES = {"transfer": {"name": "none"}, "model.norm": "none", "method.disc_norm": "none",
                  "method.adv_hidden": 0, "trainer.feature_cache": "auto", "transfer.bn": "train"}
# The saved config's format: `save_config` writes `config_version` into .hydra/config.yaml
# and `load_config` brings an older one to this version, one migration per step, then drops
# the key (it is not part of any identity). A key added later with a default other than its
# neutral value is a new version and a migration saying what a config without it meant, so an
# old run dir reopens with the meaning it was trained with, under the same identity.
CONFIG_VERSION = 2
VERSION_KEY = "config_version"
# Version 1 (no `config_version`: every config saved before versions): keys added with a
# non-neutral default, by the (group, name) that has them; a config without one meant its
# neutral value (the behaviour before the key existed).
_V1_ADDED = {("method", "mdd"): ("adv_hidden",),
             **{("method", m): ("disc_norm",) for m in ("dann", "cdan", "domain_confusion")}}


def _v1_to_v2(cfg: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added `inputs` (user files and init_from by content, `jtl.inputs`): a version-1
    config gets them recorded from the files as they are now; and the keys of `_V1_ADDED`."""
    from jtl import inputs

    for (group, name), keys in _V1_ADDED.items():
        section = cfg.get(group)
        if isinstance(section, dict) and section.get("name") == name:
            for key in keys:
                section.setdefault(key, NEUTRAL_VALUES[f"{group}.{key}"])
    return cfg if "inputs" in cfg else inputs.record(cfg)


# MIGRATIONS[v] turns a version-v config into a version-(v + 1) one.
MIGRATIONS = {1: _v1_to_v2}


# ---------------------------------------------------------------------------------------------
# Atomic writing


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write through a temporary sibling and `os.replace`, so no reader (or crash) ever sees
    half a file. The file gets the mode a plain `open()` would (mkstemp's is owner-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(v: Any) -> Any:
    """Floats JSON cannot hold (inf, nan) become strings rather than invalid JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Mapping):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def atomic_savefig(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """A matplotlib figure as PNG, atomically (the format is fixed, not read from a suffix)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | os.PathLike) -> Any | None:
    """A JSON file, or None when it is missing or unreadable (being written, cut by a crash)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------------------------------------
# Locking


def _open_own_file(path: str | os.PathLike, flags: int) -> int:
    """A descriptor on the regular file `path` (created if missing), never through a symlink
    (O_NOFOLLOW: a link planted in a run dir or cache would have jtl write into its target)
    nor onto a FIFO or device (O_NONBLOCK keeps a FIFO from blocking the open)."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            what = "is a symbolic link" if os.path.islink(path) else "has a symbolic link loop"
            raise JtlError(f"{path} {what}; jtl never writes through links in run dirs and "
                           "caches: remove it and run again") from None
        if e.errno in (errno.ENXIO, errno.EISDIR):
            raise JtlError(f"{path} is not a regular file; remove it and run again") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise JtlError(f"{path} is not a regular file; remove it and run again")
    return fd


def open_append(path: str | os.PathLike, encoding: str | None = "utf-8",
                errors: str | None = None) -> Any:
    """`open(path, "a")` for the files jtl appends to (metrics.jsonl, the job log), refusing a
    symlink or non-regular file with a JtlError instead of writing into what it points at."""
    fd = _open_own_file(path, os.O_WRONLY | os.O_APPEND)
    return os.fdopen(fd, "a", encoding=encoding, errors=errors)


class LogFile(logging.FileHandler):
    """Hydra's job log `<run dir>/<job>.log` (conf/hydra/job_logging/jtl.yaml): logging's
    FileHandler, appending through `open_append`, so a symlinked log is refused, not
    followed."""

    def _open(self) -> Any:
        return open_append(self.baseFilename, encoding=self.encoding, errors=self.errors)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, blocking: bool = True,
              busy: str = "") -> Iterator[None]:
    """An exclusive advisory lock (flock) on `path`, released when the block ends or the
    process dies. Non-blocking: a held lock raises JtlError(`busy`) at once. The lock file
    is never a symlink (its content is rewritten: a link's target would be truncated)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(_open_own_file(path, os.O_RDWR), "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            raise JtlError(busy + (f" (held by {holder})" if holder else "")) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# Identity


def _drop(cfg: Any, prefix: str = "") -> Any:
    if not isinstance(cfg, Mapping):
        return cfg
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if key in PRESENTATION_KEYS or v is None or NEUTRAL_VALUES.get(key, ...) == v:
            continue
        out[k] = _drop(v, key + ".")
    return out


def identity(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a config that determines a run's result."""
    return _drop(cfg)


def fingerprint(cfg: Mapping[str, Any]) -> str:
    blob = json.dumps(identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(cfg, Mapping) or not cfg:
        return {prefix.rstrip("."): cfg}
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def differing_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two configs' identities (missing counts)."""
    fa, fb = _flatten(identity(a)), _flatten(identity(b))
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k, "<unset>") != fb.get(k, "<unset>"))


# ---------------------------------------------------------------------------------------------
# Reading


class DamagedConfigError(JtlError):
    """A run dir's `.hydra/config.yaml` that is not a config (cut, overwritten, not YAML):
    nobody can tell which run the dir holds."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path} is damaged ({why})")
        self.path, self.why = path, why

    def __reduce__(self) -> tuple[Any, tuple[Path, str]]:  # crosses process pools
        return type(self), (self.path, self.why)


# Top-level keys of every config jtl trains (conf/config.yaml): a saved config without one of
# them was cut short.
RUN_KEYS = ("source", "target", "model", "method", "optim", "trainer", "seed")


def load_config(run_dir: str | os.PathLike, complete: bool = False) -> dict[str, Any]:
    """A run dir's composed config as plain containers. A file that is not a YAML mapping
    raises DamagedConfigError (one line); `complete`: so does one without every `RUN_KEYS` key
    (what rebuilding the run needs)."""
    import yaml
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise JtlError(f"{run_dir} is not a jtl run dir: {path} is missing")
    why = None
    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as e:
        why = f"not a YAML config: {str(e).splitlines()[0]}"
    except UnicodeDecodeError:
        why = "not text"
    except IsADirectoryError:
        why = "a directory"
    if why is None and not (isinstance(cfg, DictConfig) and len(cfg)):
        why = "empty" if isinstance(cfg, DictConfig) else "not a mapping"
    if why is None and complete:
        missing = [k for k in RUN_KEYS if k not in cfg]
        why = f"cut short: no {', '.join(missing)}" if missing else None
    if why is not None:
        raise DamagedConfigError(path, why)
    try:
        out = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that needs Hydra's runtime (e.g. ${hydra:...})
        out = OmegaConf.to_container(cfg, resolve=False)
    return migrate(out, path)  # type: ignore[arg-type]


def migrate(cfg: dict[str, Any], where: str | os.PathLike = "a saved config") -> dict[str, Any]:
    """A saved config brought to `CONFIG_VERSION` (`MIGRATIONS`), without its version key."""
    version = cfg.pop(VERSION_KEY, 1)
    if not isinstance(version, int) or not 1 <= version <= CONFIG_VERSION:
        raise JtlError(f"{where}: {VERSION_KEY}={version!r}: this jtl reads versions 1 to "
                       f"{CONFIG_VERSION} (a newer jtl wrote it? update jtl)")
    for v in range(version, CONFIG_VERSION):
        cfg = MIGRATIONS[v](cfg)
    return cfg


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """summary.json, or None when missing or unreadable."""
    s = read_json(Path(run_dir) / SUMMARY)
    return s if isinstance(s, dict) else None


def status(run_dir: str | os.PathLike) -> str:
    """completed | failed | running (or killed: a summary saying running, or none yet) | empty."""
    s = read_summary(run_dir)
    if s is not None:
        return str(s.get("status", "running"))
    d = Path(run_dir)
    return "running" if (d / CHECKPOINTS).is_dir() or (d / METRICS).exists() else "empty"


def is_completed(run_dir: str | os.PathLike) -> bool:
    return status(run_dir) == "completed"


def completed_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """summary.json when it holds a completed result, else None."""
    s = read_summary(run_dir)
    return s if s is not None and s.get("status") == "completed" else None


def completed_step(run_dir: str | os.PathLike) -> int | None:
    s = completed_summary(run_dir)
    return int(s["step"]) if s and "step" in s else None


def read_metrics(run_dir: str | os.PathLike, up_to: int | None = None) -> list[dict]:
    """metrics.jsonl rows (a line cut by a kill is skipped), optionally only steps <= up_to."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and (up_to is None or row.get("step", 0) <= up_to):
            rows.append(row)
    return rows


def read_measures(run_dir: str | os.PathLike) -> tuple[dict[str, Any], dict[str, int]]:
    """(values, the checkpoint step each was measured at) from measures.json."""
    raw = read_json(Path(run_dir) / MEASURES) or {}
    steps = raw.pop(STEPS_KEY, {}) if isinstance(raw, dict) else {}
    return (raw if isinstance(raw, dict) else {}), dict(steps)


def find_runs(root: str | os.PathLike, exclude: Sequence[Path] = ()) -> list[Path]:
    """Run dirs (holding `.hydra/config.yaml`) under `root`, itself included, not under
    `exclude` (e.g. a baselines cache); run dirs reached through a symlink count
    (`walk_dirs`)."""
    excluded = [Path(e).resolve() for e in exclude]
    out = []
    for run in walk_dirs(root):
        if not (run / CONFIG).is_file():
            continue
        resolved = run.resolve()
        if any(resolved == e or e in resolved.parents for e in excluded):
            continue
        out.append(run)
    return sorted(out)


def walk_dirs(root: str | os.PathLike) -> Iterator[Path]:
    """Every directory under `root`, itself included, following symlinks (a sweep's cell may
    be a link to a run kept elsewhere; `Path.rglob` skips those), each real directory once,
    so a link cycle ends. Breadth first: a dir reached by several paths gets the shortest."""
    seen: set[tuple[int, int]] = set()
    queue = collections.deque([Path(root)])
    while queue:
        d = queue.popleft()
        try:
            st = os.stat(d)
            if (st.st_dev, st.st_ino) in seen or not stat.S_ISDIR(st.st_mode):
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(d) as entries:
                subs = sorted(e.name for e in entries if _is_dir(e))
        except OSError:  # vanished, unreadable, a loop: nothing under it to read
            continue
        yield d
        queue.extend(d / name for name in subs)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a symlink
    except OSError:
        return False


def require_completed(run_dir: str | os.PathLike, step: int | None, what: str) -> int | None:
    """The step to read from `run_dir`: its completed step, or the `step` the user asked for.
    An unfinished run is refused unless a step is asked for, so nothing mid-training is read
    as if it were a result."""
    if step is not None:
        return int(step)
    done = completed_step(run_dir)
    if done is None:
        raise JtlError(f"{what}: {run_dir} is not a completed run (status "
                       f"{status(run_dir)}); finish it (run its command again) or ask for a "
                       f"checkpoint step explicitly")
    return done


# ---------------------------------------------------------------------------------------------
# Writing


def write_summary(run_dir: str | os.PathLike, summary: Mapping[str, Any]) -> Path:
    return atomic_write_json(Path(run_dir) / SUMMARY, dict(summary))


def record_failure(run_dir: str | os.PathLike, failure: Mapping[str, Any]) -> Path:
    """Record a failed attempt: failed.json always; summary.json only when it holds no
    completed result (a completed summary is never overwritten by a failure)."""
    run_dir = Path(run_dir)
    entry = {"status": "failed", "time": time.strftime("%Y-%m-%d %H:%M:%S"), **failure}
    with contextlib.suppress(OSError):  # a full disk or read-only dir: the CLI still reports
        atomic_write_json(run_dir / FAILED, entry)
        if not is_completed(run_dir):
            write_summary(run_dir, entry)
    return run_dir / FAILED


def record_completed(run_dir: str | os.PathLike, summary: Mapping[str, Any]) -> Path:
    """Write a completed result; an earlier attempt's failed.json no longer applies."""
    path = write_summary(run_dir, summary)
    (Path(run_dir) / FAILED).unlink(missing_ok=True)
    return path


def append_sweep_failure(sweep_dir: str | os.PathLike, run_dir: str | os.PathLike,
                         reason: str) -> None:
    """One line per failed job; O_APPEND writes of one short line do not interleave, so jobs
    of any launcher (processes, hosts on a shared file system) can report into one file."""
    line = json.dumps({"run_dir": str(run_dir), "reason": reason,
                       "time": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n"
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError), open(Path(sweep_dir) / SWEEP_FAILURES, "a") as f:
        f.write(line)


def read_sweep_failures(sweep_dir: str | os.PathLike) -> list[tuple[Path, str]]:
    try:
        lines = (Path(sweep_dir) / SWEEP_FAILURES).read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for ln in (ln for ln in lines if ln.strip()):  # a damaged line still counts as a failure
        try:
            r = json.loads(ln)
            out.append((Path(r["run_dir"]), str(r["reason"])))
        except (ValueError, KeyError, TypeError):
            out.append((Path(sweep_dir), f"unreadable line in {SWEEP_FAILURES}: {ln[:200]}"))
    return out


def write_measures(run_dir: str | os.PathLike, values: Mapping[str, Any],
                   step: int | None = None) -> Path:
    """Merge `values` into measures.json, recording the checkpoint step they were taken at."""
    old, steps = read_measures(run_dir)
    old.update(values)
    if step is not None:
        steps.update({k: int(step) for k in values})
    return atomic_write_json(Path(run_dir) / MEASURES, {**old, **({STEPS_KEY: steps} if steps
                                                                   else {})})


def save_config(run_dir: str | os.PathLike, cfg: Mapping[str, Any],
                overrides: Sequence[str] | None = None) -> None:
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    versioned = {k: v for k, v in cfg.items() if k != VERSION_KEY} | {VERSION_KEY: CONFIG_VERSION}
    atomic_write_text(run_dir / CONFIG, OmegaConf.to_yaml(OmegaConf.create(versioned)))
    if overrides is not None:
        atomic_write_text(run_dir / OVERRIDES, OmegaConf.to_yaml(list(overrides)))


def move_aside(run_dir: Path) -> Path:
    """Rename a run dir to `<name>.old-<time>` (never delete a researcher's results)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while dest.exists():
        dest = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
        n += 1
    os.replace(run_dir, dest)
    return dest


def has_state(run_dir: Path) -> bool:
    """Whether the dir holds anything a re-run could lose: checkpoints or a completed result."""
    ckpts = run_dir / CHECKPOINTS
    return is_completed(run_dir) or (ckpts.is_dir() and any(ckpts.iterdir()))


def os_error(e: OSError, where: str | os.PathLike) -> JtlError:
    """A disk-full, read-only or permission error as one line saying what to do."""
    if e.errno == errno.ENOSPC:
        return JtlError(f"disk full while writing in {where}; free space and run the same "
                        "command again: the run resumes from its last checkpoint")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return JtlError(f"cannot write in {where} ({e.strerror}); choose a writable run dir "
                        "with hydra.run.dir=...")
    return JtlError(f"{where}: {e}")  # pragma: no cover - only the errnos above get here


def _lock_run(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(run_dir / LOCK, blocking=False,
                     busy=f"{run_dir} is in use by another jtl process; wait for it to end, "
                          "or choose another hydra.run.dir")


@contextlib.contextmanager
def claim(run_dir: str | os.PathLike, cfg: Mapping[str, Any], overwrite: bool = False,
          overrides: Sequence[str] | None = None) -> Iterator[Path]:
    """Own `run_dir` for one run of `cfg` while the block runs: lock it (a second process
    fails at once), check that what it holds is a run of the same identity, save the config.

    A dir holding another config's checkpoints or completed result is refused, naming the
    differing keys, and so is one whose saved config is damaged, or one without a saved config
    holding files jtl did not write (a user's own metrics.jsonl), unless `overwrite`, which
    moves it aside (`<dir>.old-<time>`). A dir of another config with nothing to lose (no
    checkpoint, no completed result) starts over. A path that cannot be a dir (a file, a
    symlink loop, ...) or a symlinked lock or metrics.jsonl is refused in one line.
    """
    run_dir = Path(run_dir)
    why = dir_problem(run_dir)
    if why is not None:
        raise JtlError(f"cannot use {run_dir} as a run dir: {why}; choose another "
                       "hydra.run.dir=...")
    try:
        with contextlib.ExitStack() as stack:
            run_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_lock_run(run_dir))
            if (run_dir / METRICS).is_symlink():  # appended to, and read back on resume
                raise JtlError(f"{run_dir / METRICS} is a symbolic link; jtl never writes "
                               "through links in run dirs: remove it and run again")
            refusal, keys = _refusal(run_dir, cfg)
            if refusal is not None:
                if not overwrite:
                    raise JtlError(
                        f"{run_dir} {refusal}. Choose another hydra.run.dir=..., or pass "
                        "overwrite=true to move the old dir aside (kept, renamed).")
                stack.close()  # release the old dir's lock, then move it
                old = move_aside(run_dir)
                run_dir.mkdir(parents=True)
                stack.enter_context(_lock_run(run_dir))
                print(f"jtl: overwrite=true: moved the old run dir to {old}", flush=True)
            elif keys:  # another config, but nothing to lose: start over
                for name in (METRICS, SUMMARY, FAILED, MEASURES):
                    (run_dir / name).unlink(missing_ok=True)
            save_config(run_dir, cfg, overrides)
            yield run_dir
    except Exception as e:
        cause = os_cause(e)
        if cause is None:
            raise
        raise os_error(cause, run_dir) from e


# What may sit in a dir without a saved config that jtl still trains into: its own lock, the
# job log Hydra opens before jtl runs (appended to, never replaced) and Hydra's .hydra/.
_BEFORE_CONFIG = (LOCK, CONFIG.parent.name)


def _refusal(run_dir: Path, cfg: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(why `run_dir` cannot hold a run of `cfg`, or None; the keys its saved config differs
    in)."""
    if (run_dir / CONFIG).exists() or (run_dir / CONFIG).is_symlink():
        try:
            keys = differing_keys(load_config(run_dir), cfg)
        except DamagedConfigError as e:
            return (f"holds a run whose {CONFIG} is damaged ({e.why}); nobody can tell "
                    "which config's run it is"), []
        if keys and has_state(run_dir):
            more = ", ..." if len(keys) > 8 else ""
            return (f"holds a run of another config (differing keys: {', '.join(keys[:8])}"
                    f"{more}); resuming it would report its results under this config"), keys
        return None, keys
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in _BEFORE_CONFIG
                     and not (p.name.endswith(".log") and p.is_file() and not p.is_symlink()))
    if foreign:
        listed = ", ".join(foreign[:8]) + (", ..." if len(foreign) > 8 else "")
        return (f"holds files jtl did not write ({listed}) and no {CONFIG}; training there "
                "could replace them"), []
    return None, []


def dir_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be or become a directory, or None: it is a file or lies under one,
    it is a symlink loop or a link to nothing, or a name in it is longer than a file name may
    be (255 bytes)."""
    p = Path(path).absolute()
    for part in p.parts[1:]:
        n = len(os.fsencode(part))
        if n > 255:
            return f"a name in it is {n} bytes long, over the 255 a file name may have"
    cur = Path(p.anchor)
    for part in p.parts[1:]:
        cur = cur / part
        where = "it" if cur == p else f"{cur}, which it lies under,"
        try:
            st = os.stat(cur)
        except FileNotFoundError:
            return f"{where} is a symbolic link to nothing" if os.path.islink(cur) else None
        except OSError as e:
            return f"{where} is a symbolic link loop" if e.errno == errno.ELOOP else None
        if not stat.S_ISDIR(st.st_mode):
            return f"{where} is a file"
    return None


def setup_error(e: BaseException) -> JtlError | None:
    """A failure to set up a run dir before jtl's code runs, as one line, or None: Hydra
    making a dir that cannot be one (an OSError), or `LogFile` refusing a symlinked job log
    (a JtlError that logging's dictConfig wraps in a ValueError)."""
    if isinstance(e, OSError) and e.filename and e.errno in (
            errno.EEXIST, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP):
        why = dir_problem(e.filename)
        if why is not None:
            return JtlError(f"cannot make the directory {e.filename}: {why}; choose another "
                            "hydra.run.dir=... (or hydra.sweep.dir=...)")
    if type(e) is ValueError and isinstance(e.__cause__, JtlError):
        return e.__cause__
    return None


_OS_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM)


def os_cause(e: BaseException | None) -> OSError | None:
    """The disk-full / read-only / permission OSError behind `e`, or None.

    Libraries wrap it: orbax chains it, and tensorstore (orbax's writer) raises a ValueError
    that only names it, `RESOURCE_EXHAUSTED: ... No space left on device [os_error_code='28']`;
    that one comes back as the OSError it names, with the file it names."""
    import re

    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in _OS_ERRNOS:
            return e
        code = re.search(r"os_error_code=['\"]?(\d+)", str(e)) if isinstance(e, ValueError) \
            else None
        if code and int(code.group(1)) in _OS_ERRNOS:
            n = int(code.group(1))
            path = (re.search(r'Failed writing: "([^"]+)"', str(e))
                    or re.search(r'local file "([^"]+)"', str(e)))
            return OSError(n, os.strerror(n), path.group(1) if path else None)
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None
