"""jtl: transfer learning experiments in JAX.

Import `train_and_evaluate` from `jtl.train` to run one configured experiment from Python;
`jtl.load_run(run_dir)` and `jtl.load_grid(sweep_dir)` open results for analysis
(`jtl.analysis`). They are imported on first use, so `import jtl` stays cheap.
"""

from typing import Any

__version__ = "0.1.0"
_LAZY = {"load_run": "jtl.analysis.run", "load_grid": "jtl.analysis.grid"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jtl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
