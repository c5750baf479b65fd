"""Domain confusion (Tzeng et al. 2015, "Simultaneous deep transfer across domains and tasks").

Two objectives, alternated in the paper, are summed here into one loss whose gradients stay
separate (equivalent to one simultaneous step of the alternation):

    disc term:      disc_weight * BCE(D(sg(f)), domain)       -> moves only D (`disc/`)
    confusion term: weight * mean_x CE(D_sg(f(x)), [1/2, 1/2])  -> moves only the backbone

sg = stop_gradient on the features; D_sg is D with its parameters under stop_gradient. With a
sigmoid output q = sigmoid(z), CE against uniform is -(log q + log(1-q)) / 2, minimised at
q = 1/2: the features should leave the current discriminator maximally unsure. (The paper's
soft-label task transfer needs target labels and is not part of this transductive method.)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jtl.methods.adversarial import WithDiscriminator, domain_accuracy, domain_loss, frozen
from jtl.methods.base import METHODS


def confusion_loss(d: jax.Array) -> jax.Array:
    """Mean CE of sigmoid(d) against the uniform domain label: (softplus(d) + softplus(-d)) / 2."""
    return jnp.mean(0.5 * (jax.nn.softplus(d) + jax.nn.softplus(-d)))


@METHODS.register("domain_confusion")
@dataclasses.dataclass(frozen=True)
class DomainConfusion(WithDiscriminator):
    # Tzeng et al. used 0.01; at 1.0 the confusion term collapses the features before the
    # classifier learns (source accuracy 0.18 after 60 steps on digits, 0.74 at 0.1).
    weight: float = 0.1
    disc_weight: float = 1.0

    def adaptation(self, model, out, key, progress):
        f = jnp.concatenate([out.f_s, out.f_t])
        n = out.f_s.shape[0]
        d = model.disc(jax.lax.stop_gradient(f))
        dom = domain_loss(d[:n], d[n:])
        z = frozen(model.disc)(f)
        conf = 0.5 * (confusion_loss(z[:n]) + confusion_loss(z[n:]))
        metrics = {"domain_loss": dom, "domain_acc": domain_accuracy(d[:n], d[n:]),
                   "confusion_loss": conf}
        return self.disc_weight * dom + self.weight * conf, metrics
