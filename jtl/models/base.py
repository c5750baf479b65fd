"""The network every method trains: `backbone` -> `neck` -> features, `head` -> logits, plus
method modules.

Backbones keep their layers in a list called `blocks` so that parameter paths read
`backbone/blocks/<i>/...`: freezing the first k blocks or reloading some of them is a regex.
The neck (TLlib's `ImageClassifier`: pool layer, then an optional bottleneck) sits between
backbone and head; what the head and every method module read is its output,
`Network.features(x)`. Without a bottleneck it has no parameters, so the parameter paths and
numbers of a network are those it had before the slot existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    # The input fields it reads (`jtl.domains.pp.INPUT_FIELDS`): a domain of another field is
    # refused with one line naming both.
    reads: ClassVar[tuple[str, ...]] = ("image",)
    # (mean, std) per channel on the [0, 1] scale, applied by the domain's pipeline inside the
    # step (e.g. a pretrained network's constants); None: images stay in [0, 1].
    normalize: ClassVar[tuple[tuple[float, ...], tuple[float, ...]] | None] = None

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.maps(x)
        return x.reshape(x.shape[0], -1)  # flat features, also when cut after a conv block

    def maps(self, x: jax.Array) -> jax.Array:
        """The last block's output as it is ((B, H, W, C) after a conv block): what a neck
        that pools (`pool: mean`) reads."""
        for block in self.blocks:
            x = block(x)
        return x

    def cut(self, keep: int, input_shape: tuple[int, ...]) -> None:
        """Keep only the first `keep` blocks (Yosinski et al. 2014's transfer of the first n
        layers); the features become their flattened output."""
        n = len(self.blocks)
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= n:
            raise JtlError(f"transfer.keep_blocks={keep!r}: an integer in 1..{n} (this backbone "
                           f"has {n} blocks)")
        self.blocks = nnx.List(list(self.blocks)[:keep])
        self.feature_dim = int(self(jnp.zeros((1, *input_shape))).shape[1])


POOLS = ("mean",)


class Neck(nnx.Module):
    """Backbone output -> the features the head and the method modules read (`feature_dim`).

    pool: None (default) reads the backbone's own flat output, which already ends in its
    pooling (ResNet's `Pool`, MNIST-CNN's `MeanPool`, EfficientNet's mean); `mean` averages
    the last block's (B, H, W, C) maps over space instead of flattening them (TLlib's
    AdaptiveAvgPool2d + Flatten), e.g. for a backbone cut after a conv block
    (`transfer.keep_blocks`). bottleneck_dim: None (default) none; d: TLlib's bottleneck
    Linear(D, d) + BatchNorm1d + ReLU (parameters `neck/linear/...`, `neck/norm/...`).
    """

    def __init__(self, backbone: Backbone, input_shape: Sequence[int], rngs: nnx.Rngs,
                 bottleneck_dim: int | None = None, pool: str | None = None) -> None:
        if pool is not None and pool not in POOLS:
            raise JtlError(f"neck.pool={pool!r}: null (the backbone's own output) or one of "
                           f"{list(POOLS)}")
        if bottleneck_dim is not None and (isinstance(bottleneck_dim, bool) or
                                           not isinstance(bottleneck_dim, int) or
                                           bottleneck_dim < 1):
            raise JtlError(f"neck.bottleneck_dim={bottleneck_dim!r}: a width >= 1, or null")
        self.pool = pool
        dim = backbone.feature_dim
        if pool == "mean":
            shape = jax.eval_shape(backbone.maps, jnp.zeros((1, *input_shape))).shape
            if len(shape) != 4:
                raise JtlError(f"neck.pool=mean averages (B, H, W, C) maps and this backbone's "
                               f"last block gives {shape[1:]}: leave neck.pool null")
            dim = shape[-1]
        on = bottleneck_dim is not None
        self.linear = nnx.Linear(dim, bottleneck_dim, rngs=rngs) if on else None
        self.norm = batch_norm(bottleneck_dim, rngs) if on else None
        self.feature_dim = bottleneck_dim if on else dim

    def __call__(self, f: jax.Array) -> jax.Array:
        """Backbone output (its maps when pooling) -> features."""
        if self.pool == "mean":
            f = f.mean(axis=(1, 2))
        if self.linear is None:
            return f
        return jax.nn.relu(self.norm(self.linear(f)))


class Network(nnx.Module):
    def __init__(self, backbone: Backbone, num_classes: int, extra: Mapping[str, nnx.Module],
                 rngs: nnx.Rngs, neck: Neck | None = None) -> None:
        self.backbone = backbone
        self.neck = neck if neck is not None else Neck(backbone, (), rngs)
        self.head = nnx.Linear(self.neck.feature_dim, num_classes, rngs=rngs)
        for name, module in extra.items():
            if name in ("backbone", "neck", "head"):
                raise JtlError(f"a method module may not be called '{name}'")
            setattr(self, name, module)

    def features(self, x: jax.Array) -> jax.Array:
        """(B, D) features of the model input: the neck's output, what the head reads."""
        return self.neck(self.backbone.maps(x) if self.neck.pool else self.backbone(x))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


MODELS: Registry[type[Backbone]] = Registry("model", "jtl.models", "model")


def build_network(cfg: Mapping[str, Any], num_classes: int, method: Any, seed: int,
                  keep_blocks: int | None = None, neck: Mapping[str, Any] | None = None
                  ) -> Network:
    """`conf/model/<name>.yaml` + the `neck` config + the method's extra modules (built on
    the neck's feature width) -> a Network with fresh params; `keep_blocks` cuts the backbone
    after its first blocks (`Backbone.cut`). The neck draws its parameters after the
    backbone, before the method modules and the head, so a network without a bottleneck
    draws what it drew before the slot existed."""
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
    try:
        body = Neck(backbone, input_shape, rngs, **dict(neck or {}))
    except TypeError as e:
        raise JtlError(f"neck config is wrong: {e}") from None
    extra = method.modules(body.feature_dim, num_classes, rngs)
    return Network(backbone, num_classes, extra, rngs, body)


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
