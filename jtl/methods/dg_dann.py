"""DANN across training environments, as DomainBed's `DANN` (Ganin et al. 2016 with a
multi-class domain discriminator): a discriminator `disc/` tells the E training environments
apart from the features, the network makes them indistinguishable,

    loss = mean CE(head(f), y) + CE_E(disc(GRL_weight(f)), e)

with the gradient reversal (`jtl.methods.adversarial.gradient_reversal`) at coefficient
`weight`: the discriminator descends its cross-entropy (DomainBed's disc step), the network
receives -weight * its gradient (DomainBed's generator step, CE - lambda * disc_loss, lambda
1). The discriminator is DomainBed's MLP (mlp_width 256, mlp_depth 3: Linear, ReLU, Linear,
ReLU, Linear), with `max_domains` outputs of which the first E are the environments (modules
are built before the sources are known; E <= max_domains is checked at step 0).

Differences from DomainBed: its discriminator and generator alternate steps
(d_steps_per_g_step 1) with their own Adams (beta1 0.5); here both move in each step of the
trainer's one optimizer. Its grad_penalty (default 0), mlp_dropout (default 0) and
weight_decay_d (default 0) are not implemented. Distinct from `dann` (transductive: source vs
an unlabeled target, binary discriminator): this one never reads the target.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jtl.errors import JtlError
from jtl.methods.adversarial import gradient_reversal
from jtl.methods.base import METHODS, accuracy, cross_entropy
from jtl.methods.multidomain import MultiDomain


class DomainClassifier(nnx.Module):
    """DomainBed's MLP: in_dim -> width (ReLU) x (depth - 1) -> outputs logits."""

    def __init__(self, in_dim: int, width: int, depth: int, outputs: int,
                 rngs: nnx.Rngs) -> None:
        dims = [in_dim] + [width] * (depth - 1)
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(dims)])
        self.out = nnx.Linear(dims[-1], outputs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
        return self.out(x)


def class_balanced_weights(y: jax.Array, num_classes: int) -> jax.Array:
    """DomainBed's CDANN weights 1 / (n_{y_b} K), K the classes present: each class counts
    equally, the weights sum to 1."""
    counts = jnp.sum(jax.nn.one_hot(y, num_classes), 0)
    return 1.0 / (counts[y] * jnp.sum(counts > 0))


@METHODS.register("dg_dann")
@dataclasses.dataclass(frozen=True)
class DGDANN(MultiDomain):
    method_name: ClassVar[str] = "dg_dann"
    conditional: ClassVar[bool] = False  # CDANN: class embedding added, class-balanced loss

    weight: float = 1.0      # GRL coefficient (DomainBed's lambda)
    disc_width: int = 256    # discriminator width (DomainBed's mlp_width)
    disc_depth: int = 3      # discriminator layers (DomainBed's mlp_depth)
    max_domains: int = 8     # discriminator outputs; the first E are the environments

    def __post_init__(self) -> None:
        if self.weight < 0 or self.disc_width < 1 or self.disc_depth < 1 or self.max_domains < 2:
            raise JtlError(f"method.weight >= 0, disc_width >= 1, disc_depth >= 1, max_domains "
                           f">= 2; got {self.weight}, {self.disc_width}, {self.disc_depth}, "
                           f"{self.max_domains}")

    def modules(self, feature_dim, num_classes, rngs):
        mods = {"disc": DomainClassifier(feature_dim, self.disc_width, self.disc_depth,
                                         self.max_domains, rngs)}
        if self.conditional:
            mods["class_embed"] = nnx.Embed(num_classes, feature_dim, rngs=rngs)
        return mods

    def aligns(self) -> str | None:
        return "features"

    def extra_state(self, envs):
        if envs > self.max_domains:
            raise JtlError(f"method={self.method_name} has {self.max_domains} discriminator "
                           f"outputs for {envs} sources: set method.max_domains={envs}")
        return {}

    def loss_with_state(self, model, state, batch, key, progress):
        src, envs = batch["source"], len(state["envs"])
        f = model.features(src["x"])
        logits = model.head(f)
        nll = cross_entropy(logits, src["y"])
        h = gradient_reversal(f, self.weight)
        if self.conditional:
            h = h + model.class_embed(src["y"])
        d = model.disc(h)[:, :envs]
        ce = optax.softmax_cross_entropy_with_integer_labels(d, src["domain"])
        if self.conditional:
            disc = jnp.sum(class_balanced_weights(src["y"], logits.shape[-1]) * ce)
        else:
            disc = ce.mean()
        return nll + disc, {"nll": nll, "disc_loss": disc,
                            "disc_acc": accuracy(d, src["domain"])}, state
