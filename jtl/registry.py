"""Name -> factory registries that discover their package's modules on first lookup.

Adding a domain, model or method is one new file (plus its yaml): nothing else imports it by hand.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from jtl.errors import JtlError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a config name (`conf/<group>/<name>.yaml`) to the object registered under it."""

    def __init__(self, kind: str, package: str, conf_group: str) -> None:
        self.kind = kind
        self.package = package
        self.conf_group = conf_group
        self._items: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise JtlError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._items)

    def get(self, name: str) -> T:
        self._discover()
        if name not in self._items:
            raise JtlError(
                f"unknown {self.kind} '{name}'. Known: {', '.join(self.names())}. "
                f"Pick one of those, or add `{self.package.replace('.', '/')}/{name}.py` "
                f"and `conf/{self.conf_group}/{name}.yaml`."
            )
        return self._items[name]
