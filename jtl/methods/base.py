"""The method contract.

A method is a frozen dataclass whose fields are its hyper-parameters (the keys of
`conf/method/<name>.yaml` other than `name`). It says which batches it needs (`uses`), which
extra modules it adds beside `backbone` and `head` (e.g. a domain discriminator under `disc/`),
which parameters it trains (`trainable`, a regex on paths like `backbone/conv1/kernel`), and
its loss. It never owns a training loop: `jtl.train` runs every method.

The trainer hands the loss only the arrays named in `uses`, so a transductive method cannot
read target labels even by mistake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jtl.errors import JtlError
from jtl.registry import Registry

# {"source": {"x": (B,H,W,C), "y": (B,)}, "target": {"x": ...}}: only the keys in `Method.uses`.
Batch = Mapping[str, Mapping[str, jax.Array]]

# Every array a method may ask for.
ALL_INPUTS = frozenset({"source/x", "source/y", "target/x", "target/y"})


@dataclasses.dataclass(frozen=True)
class Method:
    """Base class; subclasses are registered with `@METHODS.register("<name>")`."""

    # Which arrays the loss reads, e.g. {"source/x", "source/y", "target/x"}.
    uses: ClassVar[frozenset[str]] = frozenset({"source/x", "source/y"})
    # Regex on parameter paths that this method trains (further restricted by `freeze`).
    trainable: ClassVar[str] = ".*"

    def modules(self, feature_dim: int, num_classes: int, rngs: nnx.Rngs) -> dict[str, nnx.Module]:
        """Extra modules, stored beside backbone/head under their key (e.g. `disc`)."""
        return {}

    def loss(
        self, model: nnx.Module, batch: Batch, key: jax.Array, progress: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Scalar loss and scalar metrics for one step.

        `model.backbone(x)` gives features (B, D), `model.head(f)` logits, and extra modules
        are attributes (`model.disc`). `progress` is step / (total steps - 1): 0 at the
        first step, exactly 1 at the last, for schedules such as DANN's lambda. `key` is this
        step's PRNG key.
        """
        raise NotImplementedError


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits, -1) == labels)


METHODS: Registry[type[Method]] = Registry("method", "jtl.methods", "method")


def build_method(cfg: Mapping[str, Any]) -> Method:
    """`conf/method/<name>.yaml` -> Method instance; unknown keys are an error, not ignored."""
    cfg = dict(cfg)
    cls = METHODS.get(cfg.pop("name"))
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise JtlError(
            f"method '{cls.__name__}' has no hyper-parameter(s) {unknown}; "
            f"it takes {sorted(fields)}"
        )
    bad = set(cls.uses) - ALL_INPUTS
    if bad:
        raise JtlError(f"method {cls.__name__} asks for unknown inputs {sorted(bad)}")
    return cls(**cfg)
