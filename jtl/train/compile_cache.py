"""JAX's persistent compilation cache, on by default, so a second run of the same shapes
starts without compiling (the LeNet step compiles in seconds on a 2-core CPU; a cached one
loads in a fraction of that: benchmarks/README.md).

Where: `$JTL_COMPILE_CACHE` if set (a directory; `0`, `off`, `false` or `no` disables it),
else `~/.cache/jtl/xla`. Every compiled function is cached (no minimum compile time or
size): jtl's evaluations and short chunks compile in under JAX's default 1 s threshold and
together still cost seconds. The cache is keyed by the program, the jax/jaxlib version, the
backend and the flags, so a stale entry is never used; it is safe to delete at any time.
Like every JAX cache it is trusted: do not point it at a directory others can write.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache

ENV = "JTL_COMPILE_CACHE"
DEFAULT_DIR = Path.home() / ".cache" / "jtl" / "xla"
OFF = ("0", "off", "false", "no")


def cache_dir() -> Path | None:
    """The directory `enable` uses, or None when `$JTL_COMPILE_CACHE` turns the cache off."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in OFF:
        return None
    return Path(value).expanduser() if value else DEFAULT_DIR


def enable() -> Path | None:
    """Point JAX's persistent compilation cache at `cache_dir()` and return it (None: off).

    Idempotent: a second call with the same directory changes nothing; a new directory (the
    environment variable changed) is switched to, dropping the one opened before.
    """
    path = cache_dir()
    current = jax.config.jax_compilation_cache_dir
    if path is None:
        if current is not None:
            jax.config.update("jax_compilation_cache_dir", None)
            compilation_cache.reset_cache()
        return None
    if current == str(path):
        return path
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_dir", str(path))
    compilation_cache.reset_cache()  # a cache opened at another directory is closed
    return path
