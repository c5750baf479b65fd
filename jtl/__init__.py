"""jtl: transfer learning experiments in JAX.

Import `train_and_evaluate` from `jtl.train` to run one configured experiment from Python;
`jtl.load_run(run_dir)` and `jtl.load_grid(sweep_dir)` open results for analysis
(`jtl.analysis`). They are imported on first use, so `import jtl` stays cheap.
"""

from typing import Any

__version__ = "0.1.0"
_LAZY = {"load_run": "jtl.analysis.run", "load_grid": "jtl.analysis.grid"}


# A domain's variant keys, named in run dirs beside its name (amazon_mdsd.books).
VARIANT_KEYS = ("product", "env")


def _dom(d: Any) -> str:
    if isinstance(d, str) or d is None:
        return str(d or "none")
    variant = [str(d.get(k)) for k in VARIANT_KEYS if d.get(k) is not None]
    return ".".join([str(d.get("name")), *variant])


def _pair(*, _root_: Any) -> str:
    """`${jtl_pair:}` in a run dir: `<source>_to_<target>`; several sources joined by `+`
    (`sources=[mnist,usps]`), `none` for a source-free run (`source=null`)."""
    sources = _root_.get("sources") or [_root_.get("source")]
    return f"{'+'.join(_dom(s) for s in sources)}_to_{_dom(_root_.get('target'))}"


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("jtl_pair"):
        OmegaConf.register_new_resolver("jtl_pair", _pair)


_register_resolvers()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jtl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
