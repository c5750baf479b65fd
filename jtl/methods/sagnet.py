"""SagNet, style-agnostic networks (Nam et al. 2021), as DomainBed's `SagNet` for a
featurizer + linear classifier (its variant for networks other than ResNet): a feature's
"style" is its per-example mean and variance over the feature dimension (DomainBed's
`randomize` on a (B, D) output), its "content" the normalised rest.

* content: the head classifies features whose style is mixed with another example's,
  mu <- a mu + (1 - a) mu[perm], var likewise, a ~ U(0, 1) per example (`style`), and trains
  the network and the head;
* style: a second linear classifier `style/` classifies features whose content is swapped
  with another example's (the content under stop_gradient), training only `style/`;
* adversary: the network makes the style classifier uniform, weight * -mean_c log_softmax,
  through a frozen copy of `style/` (weight 0.1 = DomainBed's sag_w_adv).

    loss = CE(head(style_mix(f)), y) + CE(style(content_swap(sg f)), y)
           + weight * -mean_c log softmax(frozen style(content_swap(f)))_c

DomainBed runs the three as three steps of three Adam optimizers, in that order, per update;
here they are one loss and one step of the trainer's optimizer, each term reaching only the
parameters DomainBed's step for it moves. Permutation and mixing weights come from the step's
key; the style (mean, variance, torch's unbiased var, eps 1e-5) is DomainBed's. The
prediction is the head on the plain features, as DomainBed's `predict`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.errors import JtlError
from jtl.methods.adversarial import frozen
from jtl.methods.base import METHODS, Method, accuracy, cross_entropy


def randomize(f: jax.Array, key: jax.Array, what: str, eps: float = 1e-5) -> jax.Array:
    """DomainBed's `randomize` on features (B, D): "style" mixes each example's mean and
    variance with another's, "content" keeps its style and takes another's (detached) normalised
    content."""
    k_alpha, k_perm = jax.random.split(key)
    alpha = jax.random.uniform(k_alpha, (f.shape[0], 1), f.dtype)
    perm = jax.random.permutation(k_perm, f.shape[0])
    mean = f.mean(-1, keepdims=True)
    var = f.var(-1, keepdims=True, ddof=1)
    z = (f - mean) / jnp.sqrt(var + eps)
    if what == "style":
        mean = alpha * mean + (1 - alpha) * mean[perm]
        var = alpha * var + (1 - alpha) * var[perm]
    else:
        z = jax.lax.stop_gradient(z[perm])
    return z * jnp.sqrt(var + eps) + mean


@METHODS.register("sagnet")
@dataclasses.dataclass(frozen=True)
class SagNet(Method):
    uses = frozenset({"source/x", "source/y"})
    weight: float = 0.1  # the adversary's weight (DomainBed's sag_w_adv)

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise JtlError(f"method.weight must be >= 0, got {self.weight}")

    def modules(self, feature_dim, num_classes, rngs):
        return {"style": nnx.Linear(feature_dim, num_classes, rngs=rngs)}

    def loss(self, model, batch, key, progress):
        x, y = batch["source"]["x"], batch["source"]["y"]
        k_c, k_s, k_adv = jax.random.split(key, 3)
        f = model.features(x)
        logits_c = model.head(randomize(f, k_c, "style"))
        loss_c = cross_entropy(logits_c, y)
        loss_s = cross_entropy(model.style(randomize(jax.lax.stop_gradient(f), k_s, "content")),
                               y)
        adv = frozen(model.style)(randomize(f, k_adv, "content"))
        loss_adv = -jnp.mean(jax.nn.log_softmax(adv, -1))
        loss = loss_c + loss_s + self.weight * loss_adv
        return loss, {"content_loss": loss_c, "style_loss": loss_s, "adv_loss": loss_adv,
                      "train_acc": accuracy(logits_c, y)}
