"""Batch Spectral Shrinkage (Chen et al., NeurIPS 2019): fine-tuning on the labeled target while
shrinking the smallest singular values of the batch's feature matrix, the spectral components
that carry untransferable (source-specific) knowledge and invite negative transfer.

    loss = CE(head(F), y) + eta * sum_{i=1..k} sigma_{-i}(F)^2,   F = backbone(x_t) (B, D)

eta = 0.001 and k = 1 are the paper's (and TLlib's `BatchSpectralShrinkage`) values. A loss
term, so a method: fine-tune with it by `transfer=finetune method=bss pretrain=...`.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jtl.methods.base import METHODS, Method, accuracy, cross_entropy


def spectral_shrinkage(features: jnp.ndarray, k: int) -> jnp.ndarray:
    """Sum of the k smallest squared singular values of `features` (B, D)."""
    sigma = jnp.linalg.svd(features, compute_uv=False)  # descending
    return jnp.sum(sigma[-k:] ** 2)


@METHODS.register("bss")
@dataclasses.dataclass(frozen=True)
class BSS(Method):
    eta: float = 0.001
    k: int = 1
    uses = frozenset({"target/x", "target/y"})

    def loss(self, model, batch, key, progress):
        data = batch["target"]
        feats = model.features(data["x"])
        logits = model.head(feats)
        ce = cross_entropy(logits, data["y"])
        shrink = spectral_shrinkage(feats, self.k)
        return ce + self.eta * shrink, {"cls_loss": ce, "bss": shrink,
                                        "train_acc": accuracy(logits, data["y"])}
