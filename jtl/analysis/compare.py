"""Which layers moved, and how alike two networks' representations are.

* `param_change(before, after)`: per layer, the relative L2 change
  ||θ_after − θ_before|| / ||θ_before|| of all its parameters (kernel and bias together),
  e.g. pretrained (or initial) weights vs fine-tuned ones: a layer frozen by `freeze=...`
  gets exactly 0.
* `linear_cka(x, y)`: linear Centered Kernel Alignment (Kornblith et al., ICML 2019) of two
  representations of the same N examples,

      CKA(X, Y) = ||Yᶜᵀ Xᶜ||²_F / (||Xᶜᵀ Xᶜ||_F ||Yᶜᵀ Yᶜ||_F)      (Xᶜ: columns centred),

  1 for identical representations, invariant to orthogonal transforms and isotropic scaling
  of either (not to arbitrary invertible linear maps), so layers of different widths and
  networks of different runs can be compared. `cka_by_layer` does it for every layer of two
  runs on the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jtl.errors import JtlError

if TYPE_CHECKING:
    import pandas as pd

    from jtl.analysis.run import LoadedRun


def _flat_params(tree: Any) -> dict[str, np.ndarray]:
    """{'backbone/blocks/0/linear/kernel': array, ...} of the float leaves of a pytree (or a
    `LoadedRun`'s params)."""
    import jax

    from jtl.models.base import path_str

    if hasattr(tree, "params") and not isinstance(tree, Mapping):
        tree = tree.params
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.asarray(leaf)
        if np.issubdtype(a.dtype, np.inexact):
            out[path_str(path)] = a.astype(np.float64)
    return out


def layer_of(path: str) -> str:
    """A parameter's layer: its path without the last component
    ('backbone/blocks/0/linear/kernel' -> 'backbone/blocks/0/linear')."""
    return path.rpartition("/")[0] or path


def param_change(before: Any, after: Any) -> pd.DataFrame:
    """Per layer present in both (in parameter order): `rel_change` = ||Δ|| / ||before||
    (inf when `before` is all zeros and Δ is not; 0 for no change), `change` = ||Δ||,
    `norm_before`, `num_params`. Arguments: parameter pytrees or `LoadedRun`s."""
    import pandas as pd

    a, b = _flat_params(before), _flat_params(after)
    common = [p for p in a if p in b]
    if not common:
        raise JtlError("the two parameter sets share no parameter path; compare runs of the "
                       "same model")
    for p in common:
        if a[p].shape != b[p].shape:
            raise JtlError(f"'{p}' has shape {a[p].shape} before and {b[p].shape} after; "
                           "compare runs of the same model and class count")
    sums: dict[str, list[float]] = {}
    for p in common:
        s = sums.setdefault(layer_of(p), [0.0, 0.0, 0])
        s[0] += float(np.sum((b[p] - a[p]) ** 2))
        s[1] += float(np.sum(a[p] ** 2))
        s[2] += a[p].size
    rows = []
    for layer, (d2, n2, size) in sums.items():
        change, norm = np.sqrt(d2), np.sqrt(n2)
        rel = change / norm if norm > 0 else (0.0 if change == 0 else np.inf)
        rows.append({"layer": layer, "rel_change": rel, "change": change,
                     "norm_before": norm, "num_params": int(size)})
    return pd.DataFrame(rows)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations (N, Dx), (N, Dy) of the same N examples (module
    doc). Computed through the smaller of the feature (D×D) and example (N×N) forms."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if len(x) != len(y):
        raise JtlError(f"CKA compares representations of the same examples; got {len(x)} and "
                       f"{len(y)} rows")
    if len(x) < 2:
        raise JtlError("CKA needs at least 2 examples")
    x = x - x.mean(0)
    y = y - y.mean(0)
    if max(x.shape[1], y.shape[1]) <= len(x):
        hsic = np.linalg.norm(y.T @ x) ** 2
        norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    else:  # ||Yᵀ X||²_F = <X Xᵀ, Y Yᵀ>_F: the same value from N×N Gram matrices
        kx, ky = x @ x.T, y @ y.T
        hsic = float(np.sum(kx * ky))
        norm_x, norm_y = np.linalg.norm(kx), np.linalg.norm(ky)
    if norm_x == 0 or norm_y == 0:
        raise JtlError("CKA is undefined for a constant representation (all rows equal)")
    return float(hsic / (norm_x * norm_y))


def cka_by_layer(a: LoadedRun, b: LoadedRun, domain: str = "target", split: str = "test",
                 layers: Sequence[str] | None = None, max_samples: int | None = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """Linear CKA between run `a`'s and run `b`'s outputs of each layer (default: every
    layer both have) on the same inputs: `a`'s `domain`/`split`, at most `max_samples`."""
    import pandas as pd

    from jtl.measures.base import subsample
    from jtl.train.runs import features

    layers = list(layers) if layers is not None else [n for n in a.layers() if n in b.layers()]
    x = a.data(domain, split).x
    x = x[subsample(np.random.default_rng(seed), len(x), max_samples)]
    return pd.DataFrame([{"layer": name, "cka": linear_cka(features(a.network, x, name),
                                                           features(b.network, x, name))}
                         for name in layers])
