"""T3A (Iwasawa & Matsuo 2021, "Test-Time Classifier Adjustment Module for Model-Agnostic
Domain Generalization"): the linear head replaced by class templates built from target
features, with no gradient step.

Supports start as the head's weight vectors w_c (labelled by the head's own prediction on
them), then every target example's feature z_i joins them, labelled yhat_i = argmax of the
head's logits with its prediction entropy. Per class only the `filter_k` (T3A's M) supports of
lowest entropy are kept; the template of class c is the normalised sum of its L2-normalised
supports, and the new logits are z . template_c (no bias; z not normalised, as T3A).

Statistics only and source-free (`trainable = None`, from `init_from`): at the last step the
boundary hook builds the templates over the whole target train split, in evaluation mode,
and writes them into `head/kernel` (`head/bias` = 0). T3A itself runs online, adding each
test batch's features before predicting it; keeping the M best per class of the union is the
same as keeping them of all seen, so this is T3A's state after one pass over target train,
then held fixed for the test split.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from jtl.errors import JtlError
from jtl.methods.base import METHODS, Boundary, Method
from jtl.methods.source_free import embed


@METHODS.register("t3a")
@dataclasses.dataclass(frozen=True)
class T3A(Method):
    uses = frozenset({"target/x"})
    trainable: ClassVar[str | None] = None  # statistics only: the head is rebuilt, not trained
    filter_k: int | None = 100  # M: supports kept per class (lowest entropy); null: all

    def __post_init__(self) -> None:
        k = self.filter_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise JtlError(f"method.filter_k={k!r}: an integer >= 1, or null (every support)")

    def loss(self, model, batch, key, progress):
        raise JtlError("t3a takes no gradient step (statistics only)")

    def on_boundary(self, params, state, ctx: Boundary):
        if ctx.step != ctx.total:
            return params, state
        feats, logits = embed(ctx.graphdef, params, ctx.roles.target.train)
        head = params["head"]
        kernel = templates(np.asarray(head["kernel"]), np.asarray(head["bias"]), feats, logits,
                           self.filter_k)
        new_head = {**head, "kernel": kernel.astype(np.float32),
                    "bias": np.zeros_like(np.asarray(head["bias"]))}
        return {**params, "head": new_head}, state


def _entropy(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -(np.exp(logp) * logp).sum(1)


def templates(kernel: np.ndarray, bias: np.ndarray, features: np.ndarray, logits: np.ndarray,
              filter_k: int | None) -> np.ndarray:
    """T3A's templates as a head kernel (D, C): the head's weights (columns of `kernel`) and
    the `features` (N, D) with their `logits` as supports, the `filter_k` lowest-entropy ones
    per predicted class, L2-normalised, summed per class, each sum L2-normalised."""
    kernel = np.asarray(kernel, np.float64)
    warm = kernel.T  # (C, D): one support per class, T3A's warm-up supports
    supports = np.concatenate([warm, np.asarray(features, np.float64)])
    z = np.concatenate([warm @ kernel + bias, np.asarray(logits, np.float64)])
    labels, ent = z.argmax(1), _entropy(z)
    k = kernel.shape[1]
    keep = np.zeros(len(supports), bool)
    for c in range(k):
        members = np.flatnonzero(labels == c)
        keep[members[np.argsort(ent[members], kind="stable")][:filter_k]] = True
    s = supports / np.maximum(np.linalg.norm(supports, axis=1, keepdims=True), 1e-12)
    sums = s[keep].T @ np.eye(k)[labels[keep]]  # (D, C)
    return sums / np.maximum(np.linalg.norm(sums, axis=0, keepdims=True), 1e-12)
