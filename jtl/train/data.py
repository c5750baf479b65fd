"""Training batches: drawn inside the compiled step from arrays already on the device.

Indices come from `jax.random` keyed by the step, so the same batches are drawn whether the
arrays live on the device (`draw`) or stay on the host and are streamed (`host_batches`), and
whatever the chunking.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jtl.domains import Domain

Arrays = Mapping[str, Mapping[str, jax.Array | np.ndarray]]


def train_arrays(source: Domain, target: Domain, uses: frozenset[str]) -> dict:
    """Only the train-split arrays a method declares in `uses` (target labels stay behind
    unless asked for)."""
    domains = {"source": source, "target": target}
    out: dict = {}
    for name in sorted(uses):
        dom, field = name.split("/")
        out.setdefault(dom, {})[field] = getattr(domains[dom].train, field)
    return out


def sizes(data: Arrays) -> dict[str, int]:
    return {dom: len(next(iter(arrs.values()))) for dom, arrs in data.items()}


def draw_indices(n: Mapping[str, int], key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
    """Uniform with-replacement indices per domain (one key each, from `fold_in`)."""
    return {dom: jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, n[dom])
            for i, dom in enumerate(sorted(n))}


def draw(data: Arrays, key: jax.Array, batch_size: int) -> dict:
    idx = draw_indices(sizes(data), key, batch_size)
    return {dom: {f: jnp.take(a, idx[dom], axis=0) for f, a in arrs.items()}
            for dom, arrs in data.items()}


def host_batches(data: Arrays, keys: jax.Array, batch_size: int) -> dict:
    """Streaming path: the same indices as `draw`, gathered on the host, stacked per step."""
    n = sizes(data)
    idx = jax.device_get(jax.vmap(lambda k: draw_indices(n, k, batch_size))(keys))
    return {dom: {f: np.asarray(a)[idx[dom]] for f, a in arrs.items()}
            for dom, arrs in data.items()}
