"""Domain generalization's per-environment view of a batch (DomainBed's list of minibatches).

With several sources the trainer concatenates their equal shares into one `source` group and
adds `domain`, each example's source index. A method that treats environments apart needs
their number as a static shape, which a traced `domain` field cannot give; so every method here
keeps `envs` = arange(E) in its state (`init_state`, from `ctx.roles.sources`), and the step
reads E from that array's length. `split_envs` sorts the batch by `domain` (stable) and
reshapes it to (E, n, ...): equal shares make the sizes static whatever the order.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jtl.errors import JtlError
from jtl.methods.base import Boundary, Method


def num_envs(ctx: Boundary, method: str) -> int:
    """The number of training environments; one source is a one-line error (nothing to
    compare it with)."""
    n = len(ctx.roles.sources)
    if n < 2:
        raise JtlError(f"method={method} compares training environments and needs several "
                       f"sources: sources=[a,b,...] (this run has {n})")
    return n


def split_envs(tree: Any, domain: jax.Array, envs: int) -> Any:
    """Every leaf (E * n, ...) -> (E, n, ...), environment e's examples in row e (in their
    batch order)."""
    order = jnp.argsort(domain, stable=True)
    return jax.tree.map(lambda a: a[order].reshape(envs, -1, *a.shape[1:]), tree)


def env_logits(model: Any, source: dict, envs: int) -> tuple[jax.Array, jax.Array]:
    """(logits (E, n, C), labels (E, n)): one forward pass over the whole source batch (as
    DomainBed's IRM/VREx/ERM), split per environment."""
    logits = model.head(model.features(source["x"]))
    return split_envs((logits, source["y"]), source["domain"], envs)


def env_risks(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy per environment: (E, n, C), (E, n) -> (E,)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(-1)


def pairwise_mean(fn: Callable[[jax.Array, jax.Array], jax.Array], groups: jax.Array
                  ) -> jax.Array:
    """mean over the E (E - 1) / 2 pairs e < e' of fn(groups[e], groups[e']): DomainBed's
    penalty over every pair of training environments (its loop `for i ... for j > i`)."""
    pairs = list(itertools.combinations(range(groups.shape[0]), 2))
    return sum(fn(groups[i], groups[j]) for i, j in pairs) / len(pairs)


def functional(model: nnx.Module) -> tuple[Callable[[Any, jax.Array], jax.Array], Any]:
    """(apply, params): the network as a function of its parameters, apply(params, x) =
    logits, and its current parameters (still differentiable with respect to the step's).
    For methods that take an inner gradient step inside their loss (mldg, fish); other state
    (batch statistics) is read as it is and not updated by the inner passes."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def apply(p: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, p, rest)(x)

    return apply, params


def annealed(weight: float, anneal_steps: int, count: jax.Array) -> jax.Array:
    """DomainBed's penalty schedule: 1 for the first `anneal_steps` updates, then `weight`."""
    return jnp.where(count >= anneal_steps, weight, 1.0)


@dataclasses.dataclass(frozen=True)
class MultiDomain(Method):
    """A method over several labeled sources; its state holds `envs` (and what the subclass
    adds in `extra_state`)."""

    uses = frozenset({"source/x", "source/y"})
    method_name: ClassVar[str] = ""  # the registry key, for messages

    def init_state(self, params: Any, ctx: Boundary) -> Any:
        envs = num_envs(ctx, self.method_name)
        return {"envs": jnp.arange(envs, dtype=jnp.int32), **self.extra_state(envs)}

    def extra_state(self, envs: int) -> dict[str, jax.Array]:
        return {}

    def loss(self, model, batch, key, progress):
        raise JtlError(f"{type(self).__name__} needs its method state (the environments); "
                       "run it through the trainer with several sources")


@dataclasses.dataclass(frozen=True)
class AnnealedPenalty(MultiDomain):
    """loss = risk + weight_t * penalty over the environments (irm, vrex), weight_t = 1 for
    the first `anneal_steps` updates and `weight` after (DomainBed's schedule), the updates
    counted in the state (DomainBed's update_count buffer)."""

    weight: float = 1.0
    anneal_steps: int = 500

    def __post_init__(self) -> None:
        if self.weight < 0 or self.anneal_steps < 0:
            raise JtlError(f"method.weight and method.anneal_steps must be >= 0, got "
                           f"{self.weight} and {self.anneal_steps}")

    def extra_state(self, envs: int) -> dict[str, jax.Array]:
        return {"update_count": jnp.zeros((), jnp.int32)}

    def risk_and_penalty(self, logits: jax.Array, labels: jax.Array
                         ) -> tuple[jax.Array, jax.Array]:
        """(risk, penalty) from per-environment logits (E, n, C) and labels (E, n)."""
        raise NotImplementedError

    def loss_with_state(self, model, state, batch, key, progress):
        logits, labels = env_logits(model, batch["source"], len(state["envs"]))
        nll, penalty = self.risk_and_penalty(logits, labels)
        count = state["update_count"]
        w = annealed(self.weight, self.anneal_steps, count)
        metrics = {"nll": nll, "penalty": penalty, "penalty_weight": w}
        return nll + w * penalty, metrics, {**state, "update_count": count + 1}


@dataclasses.dataclass(frozen=True)
class PairwiseFeaturePenalty(MultiDomain):
    """loss = mean_e CE_e + weight * mean_{e<e'} distance(features_e, features_e'), features
    the network's `features` (DomainBed's featurizer output): DomainBed's AbstractMMD, the
    base of its CORAL and MMD. One forward pass over every environment (DomainBed: one per
    environment, the same without BatchNorm)."""

    weight: float = 1.0  # DomainBed's mmd_gamma

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise JtlError(f"method.weight must be >= 0, got {self.weight}")

    def aligns(self) -> str | None:
        return "features"

    def distance(self, x: jax.Array, y: jax.Array) -> jax.Array:
        raise NotImplementedError

    def loss_with_state(self, model, state, batch, key, progress):
        src, envs = batch["source"], len(state["envs"])
        f = model.features(src["x"])
        feats, logits, labels = split_envs((f, model.head(f), src["y"]), src["domain"], envs)
        nll = env_risks(logits, labels).mean()
        penalty = pairwise_mean(self.distance, feats)
        return nll + self.weight * penalty, {"nll": nll, "penalty": penalty}, state
