"""MLDG (Li et al. 2018), as DomainBed's `MLDG`: first-order meta-learning over a split of the
training environments. At each step the environments are permuted (the step's key); the last
`n_meta_test` are meta-test, the others meta-train, each meta-train environment i paired with
a meta-test one j in turn (DomainBed's `split_meta_train_test`). For each pair, one inner
step from the current parameters theta on i's minibatch, then j's loss at the stepped
parameters:

    theta_i' = theta - inner_lr * g_i / (|g_i| + 1e-8),      g_i = dL_i/dtheta
    loss     = (1 / E) sum_pairs [ L_i(theta) + beta * L_j(theta_i') ]

theta_i' is a fresh Adam's first step (DomainBed clones the network and steps a new Adam on
L_i, whose first bias-corrected update is exactly this), taken inside the loss with jax.grad.
First order, as DomainBed: theta_i' = theta + stop_gradient(theta_i' - theta), so L_j's
gradient is dL_j/dtheta at theta_i' (no second derivatives), and the step's gradient is
DomainBed's (G_i + beta G_j) / E, then the trainer's optimizer.

Defaults: beta 1 (mldg_beta). n_meta_test: DomainBed's default is 2, which with two training
environments (ColoredMNIST) leaves no meta-train environment, so its update has no pairs and
its gradient is zero; jtl's default is 1 (in DomainBed's search range {1, 2}) and
n_meta_test >= the number of sources is refused. inner_lr 1e-3 = DomainBed's lr, the inner
Adam's (jtl's method does not see the trainer's lr; set both when the lr changes).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jtl.errors import JtlError
from jtl.methods.base import METHODS, cross_entropy
from jtl.methods.multidomain import MultiDomain, functional, split_envs


def adam_first_step(grads, lr: float):
    """The first update of a fresh Adam (bias-corrected m = g, v = g^2): -lr g / (|g| + eps)."""
    return jax.tree.map(lambda g: -lr * g / (jnp.abs(g) + 1e-8), grads)


def meta_pairs(key: jax.Array, envs: int, n_meta_test: int) -> tuple[jax.Array, jax.Array]:
    """(meta-train i, meta-test j), each (E - n_meta_test,): a permutation's first E - k
    environments, each with the last k in turn (DomainBed's cycle)."""
    perm = jax.random.permutation(key, envs)
    train, test = perm[:envs - n_meta_test], perm[envs - n_meta_test:]
    return train, test[jnp.arange(envs - n_meta_test) % n_meta_test]


@METHODS.register("mldg")
@dataclasses.dataclass(frozen=True)
class MLDG(MultiDomain):
    method_name = "mldg"
    beta: float = 1.0       # weight of the meta-test loss (DomainBed's mldg_beta)
    n_meta_test: int = 1    # meta-test environments a step (n_meta_test; DomainBed: 2)
    inner_lr: float = 1e-3  # the inner Adam step's lr (DomainBed: its lr, 1e-3)

    def __post_init__(self) -> None:
        if self.beta < 0 or self.n_meta_test < 1 or self.inner_lr <= 0:
            raise JtlError(f"method.beta >= 0, method.n_meta_test >= 1 and method.inner_lr > 0, "
                           f"got {self.beta}, {self.n_meta_test}, {self.inner_lr}")

    def extra_state(self, envs):
        if self.n_meta_test >= envs:
            raise JtlError(f"method.n_meta_test={self.n_meta_test} leaves no meta-train "
                           f"environment among {envs} sources: set it below {envs}")
        return {}

    def loss_with_state(self, model, state, batch, key, progress):
        src, envs = batch["source"], len(state["envs"])
        x, y = split_envs((src["x"], src["y"]), src["domain"], envs)
        apply, params = functional(model)
        train, test = meta_pairs(key, envs, self.n_meta_test)

        def env_loss(p, e):
            return cross_entropy(apply(p, x[e]), y[e])

        inner = outer = 0.0
        for k in range(envs - self.n_meta_test):
            i, j = train[k], test[k]
            l_i = env_loss(params, i)
            g_i = jax.grad(env_loss)(jax.lax.stop_gradient(params), i)
            step = jax.lax.stop_gradient(adam_first_step(g_i, self.inner_lr))
            l_j = env_loss(jax.tree.map(jnp.add, params, step), j)
            inner, outer = inner + l_i, outer + l_j
        loss = (inner + self.beta * outer) / envs
        return loss, {"meta_train_loss": inner / envs, "meta_test_loss": outer / envs}, state
