"""SHOT (Liang et al. 2020, "Do We Really Need to Access the Source Data? Source Hypothesis
Transfer for Unsupervised Domain Adaptation"): the source classifier (the head, the "source
hypothesis") is frozen and the feature extractor is trained on unlabeled target data so that
its features fit that hypothesis:

    loss = L_ent - L_div + beta * CE(logits_i, yhat_i)

L_ent - L_div is information maximisation (`source_free.information_maximisation`: confident
predictions that still use every class; SHOT's ent_par = 1) and yhat_i the pseudo-label of
target example i from class centroids over the whole target train split (`centroid_labels`,
SHOT's `obtain_label`), recomputed every `interval` steps by the boundary hook from the model
of that step in evaluation mode, held in the method state (checkpointed) and looked up by each
example's `index`; the first ones come from the source model (SHOT labels at iteration 0).
beta = 0.3 is SHOT's `cls_par` (digits and objects); beta = 0 is SHOT-IM (no pseudo-labels).
SHOT relabels once per epoch: `interval` = ceil(N / batch_size) steps for N target examples.

SHOT's source model is trained with label smoothing 0.1 (`method=source_only
method.label_smoothing=0.1`); its optimiser (SGD 0.01, momentum 0.9, Nesterov, weight decay
1e-3, lr (1 + 10 p)^-0.75) is the digits recipe's `optim=sgd_digits`. Differences from SHOT's
code: the head is jtl's plain linear layer (SHOT's is weight-normalised), and SHOT's digits
network puts dropout after the bottleneck's BatchNorm (jtl's LeNet has none).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import optax

from jtl.errors import JtlError
from jtl.methods.base import METHODS, Boundary, Method
from jtl.methods.source_free import embed, information_maximisation


@METHODS.register("shot")
@dataclasses.dataclass(frozen=True)
class Shot(Method):
    uses = frozenset({"target/x", "target/index"})
    trainable: ClassVar[str | None] = r"(?!head/).*"  # the source hypothesis stays fixed
    beta: float = 0.3  # weight of the pseudo-label cross-entropy (SHOT's cls_par)
    interval: int = 100  # steps between pseudo-label recomputations (SHOT: one epoch)

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise JtlError(f"method.beta must be >= 0, got {self.beta}")
        k = self.interval
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise JtlError(f"method.interval={k!r}: an integer >= 1 (steps)")

    @property
    def boundary_every(self) -> int | None:
        return self.interval if self.beta > 0 else None

    def init_state(self, params: Any, ctx: Boundary) -> Any:
        return self.relabel(params, ctx) if self.beta > 0 else None

    def relabel(self, params: Any, ctx: Boundary) -> dict[str, np.ndarray]:
        feats, logits = embed(ctx.graphdef, params, ctx.roles.target.train)
        return {"label": centroid_labels(feats, logits).astype(np.int32)}

    def on_boundary(self, params, state, ctx: Boundary):
        if state is None or ctx.step % self.interval or ctx.step == ctx.total:
            return params, state
        return params, self.relabel(params, ctx)

    def loss(self, model, batch, key, progress):  # beta = 0: SHOT-IM, no state
        x = batch["target"]["x"]
        im, ent, div = information_maximisation(model.head(model.features(x)))
        return im, {"im_loss": im, "target_entropy": ent, "diversity": div}

    def loss_with_state(self, model, state, batch, key, progress):
        if state is None:
            return (*self.loss(model, batch, key, progress), state)
        logits = model.head(model.features(batch["target"]["x"]))
        im, ent, div = information_maximisation(logits)
        pl = optax.softmax_cross_entropy_with_integer_labels(
            logits, state["label"][batch["target"]["index"]]).mean()
        return im + self.beta * pl, {"im_loss": im, "target_entropy": ent, "diversity": div,
                                     "pseudo_loss": pl}, state


def centroid_labels(features: np.ndarray, logits: np.ndarray, rounds: int = 2,
                    threshold: int = 0) -> np.ndarray:
    """SHOT's pseudo-labels: features with a 1 appended, L2-normalised; class centroids as the
    softmax-weighted means of them; each example labelled by its nearest centroid in cosine
    distance; then `rounds - 1` k-means steps with hard assignments (SHOT: one). Only
    classes with more than `threshold` members in the current labels get a centroid (SHOT's
    object code; a class nobody is assigned to has none)."""
    f = np.concatenate([np.asarray(features, np.float64), np.ones((len(features), 1))], 1)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    z = np.asarray(logits, np.float64)
    probs = np.exp(z - z.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    k = probs.shape[1]
    weights, labels = probs, probs.argmax(1)
    for _ in range(rounds):
        centroids = weights.T @ f / (1e-8 + weights.sum(0)[:, None])
        kept = np.flatnonzero(np.bincount(labels, minlength=k) > threshold)
        c = centroids[kept]
        cos = f @ c.T / np.maximum(np.linalg.norm(c, axis=1), 1e-12)
        labels = kept[cos.argmax(1)]  # least cosine distance
        weights = np.eye(k)[labels]
    return labels
