"""Fish (Shi et al. 2021, "Gradient matching for domain generalization"), as DomainBed's
`Fish`: a clone of the network takes one inner step on each environment's minibatch in turn,
and the network moves toward where the clone ended,

    theta~_0 = theta,   theta~_k = theta~_{k-1} - inner_lr * dL_{o_k}/dtheta (theta~_{k-1}),
    g_fish   = (theta - theta~_E) / (inner_lr * E)

the mean gradient along the inner trajectory, the environments in a random order o (the
step's key; the paper's Algorithm 1 permutes them). Expanding it (the paper's Theorem),

    E_o g_fish = grad [ mean_e L_e - (inner_lr / 2E) sum_{e<e'} <G_e, G_e'> ] + O(inner_lr^2)

(each order contributes H_e' G_e for e stepped before e'; over orders the pair gives half the
gradient of <G_e, G_e'>), so following it raises the inner product of the environments'
gradients (gradient matching) without second derivatives. The inner steps run inside the loss
(jax.grad); the loss is written so that its gradient is exactly g_fish (value: the mean inner
loss), and the trainer's optimizer applies it as the meta step.

Differences from DomainBed: it steps the environments in their fixed order, with Adam (one
inner Adam kept across updates), and its meta step is theta += meta_lr (theta~ - theta),
meta_lr 0.5, outside any optimizer. jtl's inner steps are the paper's plain gradient steps in
a random order, and its meta step is the trainer's optimizer on g_fish: `optim=sgd` at
lr = meta_lr * inner_lr * E is DomainBed's meta interpolation; with Adam (the DomainBed
protocol's optimizer) the direction is Adam's to scale. inner_lr 1e-3 is DomainBed's lr; with
plain steps it makes the matching term weaker than DomainBed's Adam inner steps would (each
of those moves every parameter by ~lr).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jtl.errors import JtlError
from jtl.methods.base import METHODS, cross_entropy
from jtl.methods.multidomain import MultiDomain, functional, split_envs


def fish_direction(loss_fn, params, order, inner_lr: float):
    """(g_fish, mean inner loss): sequential inner steps from `params` over the environments
    in `order` (a sequence of indices, possibly traced); loss_fn(p, e) is environment e's
    loss."""
    p, total, envs = params, 0.0, len(order)
    for e in order:
        value, g = jax.value_and_grad(loss_fn)(p, e)
        p = jax.tree.map(lambda a, b: a - inner_lr * b, p, g)
        total = total + value
    direction = jax.tree.map(lambda a, b: (a - b) / (inner_lr * envs), params, p)
    return direction, total / envs


def with_gradient(value: jax.Array, params, grads) -> jax.Array:
    """A scalar equal to `value` whose gradient with respect to `params` is `grads`."""
    dot = sum(jnp.sum(jax.lax.stop_gradient(g) * (p - jax.lax.stop_gradient(p)))
              for p, g in zip(jax.tree.leaves(params), jax.tree.leaves(grads), strict=True))
    return jax.lax.stop_gradient(value) + dot


@METHODS.register("fish")
@dataclasses.dataclass(frozen=True)
class Fish(MultiDomain):
    method_name = "fish"
    inner_lr: float = 1e-3  # the inner steps' lr (DomainBed: its lr, 1e-3, for inner Adam)

    def __post_init__(self) -> None:
        if self.inner_lr <= 0:
            raise JtlError(f"method.inner_lr must be > 0, got {self.inner_lr}")

    def loss_with_state(self, model, state, batch, key, progress):
        src, envs = batch["source"], len(state["envs"])
        x, y = split_envs((src["x"], src["y"]), src["domain"], envs)
        apply, params = functional(model)

        def env_loss(p, e):
            return cross_entropy(apply(p, x[e]), y[e])

        order = jax.random.permutation(key, envs)
        direction, inner = fish_direction(env_loss, jax.lax.stop_gradient(params),
                                          [order[k] for k in range(envs)], self.inner_lr)
        return with_gradient(inner, params, direction), {"inner_loss": inner}, state
