"""What the trainer must know of the XLA backend, kept out of the model contract.

XLA:CPU runs `lax.conv` far slower inside a `lax.scan` body than as a plain step (measured in
benchmarks/README.md), so `steps_per_call: auto` steps once per call on CPU for a network
whose training step holds a convolution. Whether it does is read from the traced gradient,
not declared by the model: LeNet's convolutions are im2col matmuls under differentiation on
CPU (models/conv.py) and scan fast; ResNet's and EfficientNet's are `conv_general_dilated`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

CONV_PRIMITIVES = frozenset({"conv_general_dilated"})


def _primitives(jaxpr: Any) -> set[str]:
    out: set[str] = set()
    for eqn in jaxpr.eqns:
        out.add(eqn.primitive.name)
        for v in eqn.params.values():
            for j in v if isinstance(v, list | tuple) else (v,):
                inner = getattr(j, "jaxpr", None)
                if inner is not None and hasattr(inner, "eqns"):
                    out |= _primitives(inner)
                elif hasattr(j, "eqns"):
                    out |= _primitives(j)
    return out


def runs_conv(net: nnx.Module, input_shape: Sequence[int], dtype: Any = jnp.float32) -> bool:
    """Whether a training step's gradient of the network on one example runs a convolution
    primitive (traced, not run: no compilation, no data). The gradient, not the forward pass:
    LeNet's im2col is a custom JVP, used under differentiation only."""
    graphdef, params, rest = nnx.split(net, nnx.Param, ...)

    def loss(params, x):
        return jnp.sum(nnx.merge(graphdef, params, rest)(x))

    x = jax.ShapeDtypeStruct((1, *input_shape), dtype)
    jaxpr = jax.make_jaxpr(jax.grad(loss))(params, x)
    return bool(_primitives(jaxpr.jaxpr) & CONV_PRIMITIVES)
