"""The measure contract: a registered function `fn(ctx, **options) -> dict` per measure.

Every measure reads what it needs from one `MeasureContext` (features and labels already
extracted from a trained model, any layer) and returns flat, JSON-ready values whose keys
start with its name (`pad`, `pad_ci_low`, ...), so many measures merge into one
`measures.json` without clashes. Its options are the keys of `conf/measure/<name>.yaml`
other than `name`; each yaml file carries `# @package measure.<name>` so that
`measure=[pad,mmd]` composes to `{measure: {pad: {...}, mmd: {...}}}` and
`measure.pad.n_boot=200` overrides one option.

The array plumbing lives here (not in each measure) so that the math files stay numpy-in,
float-out and testable without a model.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jtl.errors import JtlError
from jtl.registry import Registry

MeasureValues = dict[str, float | int | str]
Measure = Callable[..., MeasureValues]
MEASURES: Registry[Measure] = Registry("measure", "jtl.measures", "measure")


@dataclasses.dataclass(frozen=True)
class MeasureContext:
    """Everything a measure may read; fields a run cannot provide stay None.

    `*_features` (N, D) come from one layer of the model being measured; for the
    transferability estimates (LEEP, LogME, H-score, NCE) that model is the *source* model
    and `target_features` / `target_source_probs` are its outputs on target inputs, taken
    before any target training. `target_source_probs` (N, C_source) are softmax
    probabilities, not logits. `transfer_err` / `baseline_err` map seed -> target test error
    of the transfer runs and of their matching target_only runs (for `ntg`).
    """

    source_features: np.ndarray | None = None
    source_labels: np.ndarray | None = None
    target_features: np.ndarray | None = None
    target_labels: np.ndarray | None = None
    target_source_probs: np.ndarray | None = None
    run_dir: Path | None = None
    seed: int = 0
    transfer_err: Mapping[int, float] | None = None
    baseline_err: Mapping[int, float] | None = None

    def need(self, measure: str, *fields: str) -> tuple[Any, ...]:
        """The named fields, or a JtlError saying which ones this measure is missing."""
        missing = [f for f in fields if getattr(self, f) is None]
        if missing:
            raise JtlError(
                f"measure '{measure}' needs {', '.join(missing)}, which this run does not "
                f"provide; drop '{measure}' from `measure=[...]` or measure a run that has them"
            )
        return tuple(getattr(self, f) for f in fields)


def subsample(rng: np.random.Generator, n: int, max_n: int | None) -> np.ndarray:
    """Sorted indices of at most `max_n` of `n` items, uniformly without replacement."""
    if max_n is None or n <= max_n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=int(max_n), replace=False))


def as_features(x: np.ndarray, what: str) -> np.ndarray:
    """(N, ...) -> (N, D) float64; the measures treat every sample as a flat vector."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] == 0:
        raise JtlError(f"{what} must be a non-empty (N, D) array, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def as_labels(y: np.ndarray, n: int | None = None, what: str = "labels") -> np.ndarray:
    """Integer labels (N,) re-indexed to 0..K-1 in sorted order of their values."""
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise JtlError(f"{what} must be a non-empty 1-d array, got shape {y.shape}")
    if n is not None and len(y) != n:
        raise JtlError(f"{what} has {len(y)} entries but there are {n} samples")
    return np.unique(y, return_inverse=True)[1].reshape(-1)


def as_probs(p: np.ndarray) -> np.ndarray:
    """(N, C) rows on the simplex; logits are a common mistake, so say so."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise JtlError(f"source-model probabilities must be (N, C), got shape {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise JtlError("source-model outputs must be softmax probabilities (rows >= 0 summing "
                       "to 1), not logits; apply a softmax first")
    return p


def _check_options(name: str, fn: Measure, options: Mapping[str, Any]) -> None:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p != "ctx"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise JtlError(f"measure '{name}' has no option(s) {unknown}; it takes {accepted}")


def run_measures(ctx: MeasureContext, cfg: Mapping[str, Any]) -> MeasureValues:
    """Run each measure of a composed `measure` config ({name: {name: ..., **options}}).

    Unknown options are an error rather than silently ignored, like method configs.
    """
    out: MeasureValues = {}
    for key, entry in cfg.items():
        options = dict(entry or {})
        name = str(options.pop("name", key))
        fn = MEASURES.get(name)
        _check_options(name, fn, options)
        values = fn(ctx, **options)
        clash = sorted(set(values) & set(out))
        if clash:
            raise JtlError(f"measure '{name}' reports keys already set by another: {clash}")
        out.update(values)
    return out


# MMD and CORAL are also DA losses, so their math lives in jnp (`mmd.py`, `coral.py`); these
# entries only adapt them to the measure contract. Imports stay inside the functions so the
# registry loads without JAX initialising.


def _pair(ctx: MeasureContext, name: str, max_samples: int | None) -> tuple[np.ndarray, ...]:
    fs, ft = ctx.need(name, "source_features", "target_features")
    fs, ft = as_features(fs, "source_features"), as_features(ft, "target_features")
    if fs.shape[1] != ft.shape[1]:
        raise JtlError(f"{name}: source and target features differ in width "
                       f"({fs.shape[1]} vs {ft.shape[1]}); measure the same layer on both")
    rng = np.random.default_rng(ctx.seed)
    return fs[subsample(rng, len(fs), max_samples)], ft[subsample(rng, len(ft), max_samples)]


@MEASURES.register("mmd")
def mmd_measure(ctx: MeasureContext, max_samples: int | None = 2000,
                **kernel: Any) -> MeasureValues:
    """Unbiased multi-kernel MMD^2 between source and target features (`jtl.measures.mmd`).

    `kernel` options (kernel_mul, kernel_num, bandwidth) go to `mk_mmd` unchanged;
    `max_samples` caps each side because the estimator is quadratic in N.
    """
    from jtl.measures.mmd import mk_mmd

    fs, ft = _pair(ctx, "mmd", max_samples)
    return {"mmd": float(mk_mmd(fs.astype(np.float32), ft.astype(np.float32), **kernel))}


@MEASURES.register("coral")
def coral_measure(ctx: MeasureContext, max_samples: int | None = None) -> MeasureValues:
    """CORAL distance between source and target feature covariances (`jtl.measures.coral`)."""
    from jtl.measures.coral import coral_distance

    fs, ft = _pair(ctx, "coral", max_samples)
    return {"coral": float(coral_distance(fs.astype(np.float32), ft.astype(np.float32)))}
