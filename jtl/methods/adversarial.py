"""Domain-adversarial building blocks shared by dann, cdan, domain_confusion and mdd.

The trainer takes one gradient of one loss and applies one optimizer step to every parameter.
The min-max game of adversarial adaptation therefore has to be written so that each term's
gradient reaches only the parameters that should follow it:

* gradient reversal (`gradient_reversal`): identity forward, -coeff * g backward. With
  loss = CE + w * L_dom(D(GRL(f))), the discriminator descends w * L_dom while the feature
  extractor receives -coeff * w * dL_dom/df, i.e. ascends the domain loss (DANN, CDAN).
* `stop_gradient` on features / a `frozen` copy of the discriminator: two terms, one moving
  only D, one moving only the features (domain confusion). Summing them in one loss is one
  simultaneous step of the usual alternating scheme.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TypeVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jtl.errors import JtlError
from jtl.methods.transductive import Transductive
from jtl.models.base import batch_norm, check_norm

M = TypeVar("M", bound=nnx.Module)


@jax.custom_vjp
def _reverse(x: jax.Array, coeff: jax.Array) -> jax.Array:
    return x


def _reverse_fwd(x: jax.Array, coeff: jax.Array) -> tuple[jax.Array, jax.Array]:
    return x, coeff


def _reverse_bwd(coeff: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    # No gradient for coeff: it is a schedule, not something to learn.
    return (-coeff * g).astype(g.dtype), jnp.zeros_like(coeff)


_reverse.defvjp(_reverse_fwd, _reverse_bwd)


def gradient_reversal(x: jax.Array, coeff: float | jax.Array = 1.0) -> jax.Array:
    """Gradient reversal layer (Ganin & Lempitsky 2015): returns x; its gradient is -coeff * g."""
    return _reverse(x, jnp.asarray(coeff, dtype=x.dtype))


def dann_lambda(progress: jax.Array, gamma: float = 10.0) -> jax.Array:
    """DANN's GRL coefficient 2 / (1 + exp(-gamma p)) - 1: 0 at the start, -> 1 by the end, so
    the noisy early discriminator does not yet push the features around."""
    return 2.0 / (1.0 + jnp.exp(-gamma * progress)) - 1.0


def frozen(module: M) -> M:
    """A copy of `module` whose parameters are under `stop_gradient`: it computes the same
    function but no gradient flows into its parameters (inputs still get gradients)."""
    graphdef, state = nnx.split(module)
    return nnx.merge(graphdef, jax.lax.stop_gradient(state))


class DomainDiscriminator(nnx.Module):
    """MLP in_dim -> hidden (ReLU) x layers -> 1 logit of "this sample is from the source".

    `norm="batch"`: Linear -> BatchNorm -> ReLU per hidden layer, TLlib's DomainDiscriminator
    (its default); the statistics are taken over the joint [source; target] batch it is given.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, rngs: nnx.Rngs,
                 norm: str = "none") -> None:
        check_norm(norm, "method.disc_norm")
        dims = [in_dim] + [hidden] * layers
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(dims)])
        # Their own list, so the linear layers keep the paths they have without norm.
        self.norms = (nnx.List([batch_norm(hidden, rngs) for _ in range(layers)])
                      if norm == "batch" else None)
        self.out = nnx.Linear(dims[-1], 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            x = jax.nn.relu(x if self.norms is None else self.norms[i](x))
        return self.out(x)[:, 0]


def _mean(v: jax.Array, w: jax.Array | None) -> jax.Array:
    return v.mean() if w is None else jnp.sum(w * v) / jnp.sum(w)


def domain_loss(
    d_s: jax.Array,
    d_t: jax.Array,
    w_s: jax.Array | None = None,
    w_t: jax.Array | None = None,
) -> jax.Array:
    """Binary cross-entropy of discriminator logits, source = 1, target = 0, each domain's
    (optionally weighted) mean counted 1/2 so unequal batch sizes do not tilt it."""
    bce_s = optax.sigmoid_binary_cross_entropy(d_s, jnp.ones_like(d_s))
    bce_t = optax.sigmoid_binary_cross_entropy(d_t, jnp.zeros_like(d_t))
    return 0.5 * (_mean(bce_s, w_s) + _mean(bce_t, w_t))


def domain_accuracy(d_s: jax.Array, d_t: jax.Array) -> jax.Array:
    """Balanced accuracy of the discriminator; 0.5 means the domains are indistinguishable."""
    return 0.5 * (jnp.mean(d_s > 0) + jnp.mean(d_t < 0))


@dataclasses.dataclass(frozen=True)
class WithDiscriminator(Transductive):
    """A transductive method with a domain discriminator stored under `disc/`."""

    disc_hidden: int = 1024
    disc_layers: int = 2
    disc_norm: str = "batch"

    def __post_init__(self) -> None:
        check_norm(self.disc_norm, "method.disc_norm")
        if self.disc_hidden < 1 or self.disc_layers < 0:
            raise JtlError(
                f"method.disc_hidden must be >= 1 and method.disc_layers >= 0, "
                f"got {self.disc_hidden} and {self.disc_layers}"
            )

    def disc_input_dim(self, feature_dim: int, num_classes: int) -> int:
        return feature_dim

    def modules(self, feature_dim, num_classes, rngs):
        in_dim = self.disc_input_dim(feature_dim, num_classes)
        return {"disc": DomainDiscriminator(in_dim, self.disc_hidden, self.disc_layers, rngs,
                                            self.disc_norm)}


SCHEDULES = ("dann", "constant")


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise JtlError(f"method.schedule must be one of {SCHEDULES}, got '{schedule}'")


def reversal_coeff(schedule: str, gamma: float, progress: jax.Array) -> jax.Array:
    """The GRL coefficient at progress p: "dann" ramps 2/(1+exp(-gamma p)) - 1 from 0 to ~1,
    "constant" is 1 throughout."""
    progress = jnp.asarray(progress, jnp.float32)
    if schedule == "constant":
        return jnp.ones_like(progress)
    return dann_lambda(progress, gamma)


@dataclasses.dataclass(frozen=True)
class GradientReversal(WithDiscriminator):
    """Adversarial through a GRL whose coefficient follows `schedule` (`reversal_coeff`)."""

    gamma: float = 10.0
    schedule: str = "dann"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_schedule(self.schedule)

    def aligns(self) -> str | None:
        return "features"

    def adversarial(
        self,
        model: nnx.Module,
        h_s: jax.Array,
        h_t: jax.Array,
        progress: jax.Array,
        w_s: jax.Array | None = None,
        w_t: jax.Array | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """L_dom(D(GRL(h))), unweighted: D minimises the domain loss, whatever produced h
        maximises it with strength coeff (times the method's `weight` where it is applied)."""
        coeff = reversal_coeff(self.schedule, self.gamma, progress)
        d = model.disc(gradient_reversal(jnp.concatenate([h_s, h_t]), coeff))
        n = h_s.shape[0]
        d_s, d_t = d[:n], d[n:]
        dom = domain_loss(d_s, d_t, w_s, w_t)
        return dom, {"domain_loss": dom, "domain_acc": domain_accuracy(d_s, d_t), "lambda": coeff}
