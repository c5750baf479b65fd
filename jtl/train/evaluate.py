"""Accuracy and loss on a held-out split, in fixed-size batches (one compiled shape)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jtl.domains import Split


def make_eval(graphdef: nnx.GraphDef):
    @jax.jit
    def batch_stats(params, x, y, mask):
        logits = nnx.merge(graphdef, params)(x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = jnp.argmax(logits, -1) == y
        return jnp.sum(correct * mask), jnp.sum(loss * mask)

    def evaluate(params, split: Split, batch_size: int = 1000) -> dict[str, float]:
        n = len(split)
        correct = total_loss = 0.0
        for start in range(0, n, batch_size):
            x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
            pad = batch_size - len(y) if n > batch_size else 0
            mask = np.concatenate([np.ones(len(y), np.float32), np.zeros(pad, np.float32)])
            if pad:
                x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
                y = np.concatenate([y, np.zeros(pad, y.dtype)])
            c, loss = batch_stats(params, x, y, mask)
            correct += float(c)
            total_loss += float(loss)
        return {"accuracy": correct / n, "loss": total_loss / n}

    return evaluate
