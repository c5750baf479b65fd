"""The one find-or-train cache: a completed run of a config, found under some roots by its
key, or trained once into the key's own dir under a lock.

A *key* is what a saved config must give for its run to be the one asked for (`key_of`, None:
not a run of this cache); `place(key)` names the key's own run dir and its lock file. A
lookup answers, in order: the key's own dir when it holds a completed run of the key (where
this cache trains it); else the one completed run of the key under the roots, searched once,
the first time it is needed (a damaged config is passed over). Two of those are an error
naming both, never a silent choice. A missing run is trained by `train(run dir)` while the
lock is held, so callers in other processes wait, then find it there instead of training it
again. `train` raises when it cannot train; a dir left without a completed run of the key is
an error too.

The users and their layouts, the same as before this module existed (a run cached by earlier
code is found where it lies):

* `jtl.transfer.pretrain`: key = the run's fingerprint; `<pretrain_dir>/<fingerprint>`, lock
  `<pretrain_dir>/.<fingerprint>.lock`; trained in this process.
* `jtl.results.baselines`: key = (method, hash of the reference key, seed);
  `<baselines_dir>/<method>/<hash>/seed<S>`, lock `<baselines_dir>/<method>/<hash>/.seed<S>
  .lock`; trained by a child `python -m jtl.train`.

It imports only `jtl.rundir`, since the trainer reaches it through `pretrain=`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jtl import rundir
from jtl.errors import JtlError

# A saved config's key; None: not a run of this cache.
KeyOf = Callable[[Mapping[str, Any]], Hashable | None]
# A key's own run dir and its lock file.
Place = Callable[[Any], tuple[Path, Path]]
# Trains a run into the dir it is given; raises when it cannot.
Train = Callable[[Path], object]


class RunCache:
    """Completed runs by key under `root` (where missing ones are trained) and `search`."""

    def __init__(self, root: str | Path, key_of: KeyOf, place: Place,
                 search: Sequence[str | Path] = (),
                 describe: Callable[[Any], str] = lambda key: f"the run of key {key}") -> None:
        self.root = Path(root)
        self.roots = [self.root, *map(Path, search)]
        self.key_of, self.place, self.describe = key_of, place, describe
        self.trained: list[Path] = []  # by this cache, in order
        self._index: dict[Hashable, list[Path]] | None = None

    def key(self, run: Path) -> Hashable | None:
        """`run`'s key when it holds a completed run with a readable config, else None."""
        if not rundir.is_completed(run):
            return None
        try:
            return self.key_of(rundir.load_config(run))
        except JtlError:  # a damaged or foreign config: not a run anybody can reuse
            return None

    def index(self) -> dict[Hashable, list[Path]]:
        """Key -> the completed runs under the roots (each real dir once), built once."""
        if self._index is None:
            self._index = defaultdict(list)
            seen: set[Path] = set()
            for root in self.roots:
                for run in rundir.find_runs(root) if root.is_dir() else []:
                    if run.resolve() in seen:
                        continue
                    seen.add(run.resolve())
                    if (key := self.key(run)) is not None:
                        self._index[key].append(run)
        return self._index

    def find(self, key: Hashable) -> Path | None:
        """The completed run of `key`: its own dir, else the one under the roots, or None."""
        own = self.place(key)[0]
        if self.key(own) == key:
            return own
        found = self.index().get(key, [])
        if len(found) > 1:
            raise JtlError(f"{found[0]} and {found[1]} are both {self.describe(key)}; keep "
                           "one of them")
        return found[0] if found else None

    def get(self, key: Hashable, train: Train) -> Path:
        """The completed run of `key`, trained into its own dir first when there is none."""
        found = self.find(key)
        if found is not None:
            return found
        run_dir, lock = self.place(key)
        with rundir.file_lock(lock):
            if self.key(run_dir) != key:  # another process may have trained it meanwhile
                train(run_dir)
                self.trained.append(run_dir)
        if not rundir.is_completed(run_dir):
            raise JtlError(f"{run_dir} ({self.describe(key)}) did not complete; see its "
                           f"{rundir.SUMMARY}")
        if self.key(run_dir) != key:
            raise JtlError(f"{run_dir} ({self.describe(key)}) holds a run of another config; "
                           "delete that dir and run again")
        return run_dir
