"""The network every method trains: `backbone` -> features, `head` -> logits, plus method modules.

Backbones keep their layers in a list called `blocks` so that parameter paths read
`backbone/blocks/<i>/...`: freezing the first k blocks or reloading some of them is a regex.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.errors import JtlError
from jtl.registry import Registry

NORMS = ("none", "batch")


def check_norm(norm: str, key: str) -> None:
    if norm not in NORMS:
        raise JtlError(f"{key}={norm!r}: use one of {NORMS}")


def batch_norm(dim: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """PyTorch's BatchNorm1d defaults (running-average momentum 0.1, eps 1e-5), as in the TLlib
    recipes jtl follows; built in evaluation mode (running averages): the training step switches
    it to batch statistics (jtl/train/step.py), so every other use of the model is inference."""
    return nnx.BatchNorm(dim, momentum=0.9, epsilon=1e-5, use_running_average=True, rngs=rngs)


class Backbone(nnx.Module):
    """Maps images (B, H, W, C) to features (B, feature_dim)."""

    feature_dim: int
    # True when the backbone runs lax.conv on XLA:CPU (ResNet), which is far slower inside
    # `lax.scan` there: the trainer's `steps_per_call: auto` then steps once per call on CPU.
    # LeNet's convolutions are im2col on CPU (models/conv.py) and scan fast: False.
    has_conv: ClassVar[bool] = False
    # The input fields it reads (`jtl.domains.pp.INPUT_FIELDS`): a domain of another field is
    # refused with one line naming both.
    reads: ClassVar[tuple[str, ...]] = ("image",)
    # (mean, std) per channel on the [0, 1] scale, applied by the domain's pipeline inside the
    # step (e.g. a pretrained network's constants); None: images stay in [0, 1].
    normalize: ClassVar[tuple[tuple[float, ...], tuple[float, ...]] | None] = None

    def __call__(self, x: jax.Array) -> jax.Array:
        for block in self.blocks:
            x = block(x)
        return x.reshape(x.shape[0], -1)  # flat features, also when cut after a conv block

    def cut(self, keep: int, input_shape: tuple[int, ...]) -> None:
        """Keep only the first `keep` blocks (Yosinski et al. 2014's transfer of the first n
        layers); the features become their flattened output."""
        n = len(self.blocks)
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= n:
            raise JtlError(f"transfer.keep_blocks={keep!r}: an integer in 1..{n} (this backbone "
                           f"has {n} blocks)")
        self.blocks = nnx.List(list(self.blocks)[:keep])
        self.feature_dim = int(self(jnp.zeros((1, *input_shape))).shape[1])


class Network(nnx.Module):
    def __init__(self, backbone: Backbone, num_classes: int, extra: Mapping[str, nnx.Module],
                 rngs: nnx.Rngs) -> None:
        self.backbone = backbone
        self.head = nnx.Linear(backbone.feature_dim, num_classes, rngs=rngs)
        for name, module in extra.items():
            if name in ("backbone", "head"):
                raise JtlError(f"a method module may not be called '{name}'")
            setattr(self, name, module)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.backbone(x))


MODELS: Registry[type[Backbone]] = Registry("model", "jtl.models", "model")


def build_network(cfg: Mapping[str, Any], num_classes: int, method: Any, seed: int,
                  keep_blocks: int | None = None) -> Network:
    """`conf/model/<name>.yaml` + the method's extra modules -> a Network with fresh params;
    `keep_blocks` cuts the backbone after its first blocks (`Backbone.cut`)."""
    cfg = dict(cfg)
    cls = MODELS.get(cfg.pop("name"))
    input_shape = tuple(cfg.pop("input_shape"))
    rngs = nnx.Rngs(seed)
    try:
        backbone = cls(input_shape=input_shape, rngs=rngs, **cfg)
    except TypeError as e:
        raise JtlError(f"model '{cls.__name__}' config is wrong: {e}") from None
    if keep_blocks is not None:
        backbone.cut(keep_blocks, input_shape)
    extra = method.modules(backbone.feature_dim, num_classes, rngs)
    return Network(backbone, num_classes, extra, rngs)


def param_paths(params: Any) -> list[str]:
    """'backbone/blocks/0/kernel'-style paths of a parameter pytree, in tree order."""
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def path_str(path: tuple) -> str:
    parts = []
    for k in path:
        parts.append(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))))
    return "/".join(parts)


METRICS = ("euclidean", "cosine", "cl2n")


def prototype_head(features: jax.Array, labels: jax.Array, num_classes: int,
                   metric: str = "euclidean", center: jax.Array | None = None) -> dict[str, Any]:
    """Nearest-class-mean classifier as a linear head; it needs no training, one labeled
    example per class suffices.

    euclidean (Snell et al. 2017): argmin_c ||f - mu_c||^2 = argmax_c (f . mu_c - ||mu_c||^2/2),
    so kernel = [mu_c] (D, C), bias = -||mu_c||^2 / 2.
    cosine (SimpleShot's L2-normalised features, Wang et al. 2019): m_c the mean of the
    normalised features, argmax_c cos(f, m_c) = argmax_c f . m_c / ||m_c|| (||f|| is the same
    for every class), so kernel = [m_c / ||m_c||], bias = 0.
    cl2n (SimpleShot's centred then L2-normalised features): cosine on f - `center`, so
    kernel = [m_c / ||m_c||] of the centred support features and bias = -center . kernel.
    """
    if metric not in METRICS:
        raise JtlError(f"prototype metric {metric!r}: use one of {list(METRICS)}")
    if (metric == "cl2n") != (center is not None):
        raise JtlError("prototype metric cl2n takes a center (the mean feature to subtract); "
                       "euclidean and cosine take none")
    onehot = jax.nn.one_hot(labels, num_classes, dtype=features.dtype)
    counts = onehot.sum(0)
    missing = [int(c) for c in jnp.flatnonzero(counts == 0)]
    if missing:
        raise JtlError(f"head=prototype: classes {missing} have no labeled target example; "
                       "give every class at least one (target.per_class >= 1)")
    if metric == "cl2n":
        features = features - center
    if metric != "euclidean":
        features = features / jnp.maximum(jnp.linalg.norm(features, axis=1, keepdims=True),
                                          1e-12)
    means = (onehot.T @ features) / counts[:, None]
    if metric != "euclidean":
        kernel = means / jnp.maximum(jnp.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        bias = jnp.zeros(num_classes, features.dtype) if center is None else -kernel @ center
        return {"kernel": kernel.T, "bias": bias}
    return {"kernel": means.T, "bias": -0.5 * jnp.sum(means**2, axis=1)}
