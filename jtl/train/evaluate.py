"""Accuracy and loss on a held-out split, in fixed-size batches (one compiled shape).

The split's stored fields go to the device as they are and its evaluation pipeline (`Split.pp`:
scaling, resize, normalisation, no augmentation) runs inside the compiled function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jtl.domains import Split
from jtl.domains.pp import FIELD_GROUPS


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
        names = FIELD_GROUPS[split.field]
        correct = total_loss = 0.0
        for start in range(0, n, batch_size):
            fields = {f: split.fields[f][start:start + batch_size] for f in names}
            y = split.y[start:start + batch_size]
            pad = batch_size - len(y) if n > batch_size else 0
            mask = np.concatenate([np.ones(len(y), np.float32), np.zeros(pad, np.float32)])
            if pad:
                fields = {f: np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])
                          for f, a in fields.items()}
                y = np.concatenate([y, np.zeros(pad, y.dtype)])
            c, loss = batch_stats(params, fields, y, mask, split.pp)
            correct += float(c)
            total_loss += float(loss)
        return {"accuracy": correct / n, "loss": total_loss / n}

    return evaluate
