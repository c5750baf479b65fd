"""Accuracy and loss on a held-out split, and logits over a whole split, in fixed-size batches
(one compiled shape).

The split's stored fields go to the device as they are and its evaluation pipeline (`Split.pp`:
scaling, resize, normalisation, no augmentation) runs inside the compiled function.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jtl.domains import Split
from jtl.domains.pp import FIELD_GROUPS


def padded_batches(split: Split, batch_size: int, labels: bool = True
                   ) -> Iterator[tuple[dict, np.ndarray | None, np.ndarray]]:
    """(stored input fields, labels, mask) per batch, the last one zero-padded to
    `batch_size` (mask 0) when the split holds more than one batch: one compiled shape."""
    n = len(split)
    names = FIELD_GROUPS[split.field]
    for start in range(0, n, batch_size):
        fields = {f: split.fields[f][start:start + batch_size] for f in names}
        m = len(next(iter(fields.values())))
        y = split.y[start:start + batch_size] if labels else None
        pad = batch_size - m if n > batch_size else 0
        mask = np.concatenate([np.ones(m, np.float32), np.zeros(pad, np.float32)])
        if pad:
            fields = {f: np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])
                      for f, a in fields.items()}
            y = None if y is None else np.concatenate([y, np.zeros(pad, y.dtype)])
        yield fields, y, mask


def make_eval(graphdef: nnx.GraphDef):
    def batch_stats(params, fields, y, mask, pp):
        x = fields[next(iter(fields))] if pp is None else pp(fields)
        logits = nnx.merge(graphdef, params)(x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = jnp.argmax(logits, -1) == y
        return jnp.sum(correct * mask), jnp.sum(loss * mask)

    batch_stats = jax.jit(batch_stats, static_argnums=4)

    def evaluate(params, split: Split, batch_size: int = 1000) -> dict[str, float]:
        n = len(split)
        correct = total_loss = 0.0
        for fields, y, mask in padded_batches(split, batch_size):
            c, loss = batch_stats(params, fields, y, mask, split.pp)
            correct += float(c)
            total_loss += float(loss)
        return {"accuracy": correct / n, "loss": total_loss / n}

    return evaluate


@functools.lru_cache(maxsize=8)
def make_predict(graphdef: nnx.GraphDef):
    """`predict(params, split) -> logits (N, C)` of the network in evaluation mode, under the
    split's evaluation pipeline: what a boundary hook reads of a whole split (pseudo-labels)."""
    def logits_of(params, fields, pp):
        return nnx.merge(graphdef, params)(pp(fields))

    logits_of = jax.jit(logits_of, static_argnums=2)

    def predict(params, split: Split, batch_size: int = 1000) -> np.ndarray:
        parts = [np.asarray(logits_of(params, fields, split.pp))[mask > 0]
                 for fields, _, mask in padded_batches(split, batch_size, labels=False)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    return predict
