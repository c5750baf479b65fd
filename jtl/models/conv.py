"""Convolution and pooling layers that are fast on XLA:CPU, with nnx.Conv's parameters.

XLA:CPU runs `lax.conv_general_dilated` slowly, and ~6x slower still inside a loop body
(`lax.scan`), which kept conv nets at one compiled call per step. The same convolution
written as im2col -- the kh*kw shifted slices of the (padded) input concatenated on the
channel axis, then one matmul with the kernel reshaped to (kh*kw*cin, cout) -- is only
slices, a concatenation and a dot, which XLA:CPU runs fast at top level and in a loop alike
(benchmarks/README.md). `Conv` is `nnx.Conv` with that function plugged into its
`conv_general_dilated` hook, so parameter paths, shapes and initialisation are nnx.Conv's and
existing checkpoints load unchanged.

`impl`: `xla` (lax.conv), `im2col`, or `auto`, decided when the function is traced: im2col on
CPU, lax.conv elsewhere (cuDNN's convolutions beat a materialised im2col on GPUs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from jtl.errors import JtlError

CONV_IMPLS = ("auto", "xla", "im2col")


def use_im2col(impl: str) -> bool:
    """Whether `impl` means im2col on the backend being traced for."""
    if impl not in CONV_IMPLS:
        raise JtlError(f"model.conv_impl={impl!r}: use one of {', '.join(CONV_IMPLS)}")
    return impl == "im2col" or (impl == "auto" and jax.default_backend() == "cpu")


def _pads(padding: str | Sequence[tuple[int, int]], shape: Sequence[int],
          window: Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    if isinstance(padding, str):
        return list(lax.padtype_to_pads(shape, window, strides, padding))
    return [tuple(p) for p in padding]


def im2col_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                padding: str | Sequence[tuple[int, int]], lhs_dilation: Sequence[int] = (1, 1),
                rhs_dilation: Sequence[int] = (1, 1), dimension_numbers: Any = None,
                feature_group_count: int = 1, precision: Any = None,
                preferred_element_type: Any = None, **kwargs: Any) -> jax.Array:
    """A 2-D NHWC x HWIO convolution as im2col + one matmul (same signature as the part of
    `lax.conv_general_dilated` that nnx.Conv calls). Dilations and groups go to lax.conv."""
    if (lhs.ndim != 4 or tuple(lhs_dilation) != (1, 1) or tuple(rhs_dilation) != (1, 1)
            or feature_group_count != 1 or kwargs.get("out_sharding") is not None):
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, precision=precision,
            preferred_element_type=preferred_element_type, **kwargs)
    kh, kw, cin, cout = rhs.shape
    sh, sw = window_strides
    pads = _pads(padding, lhs.shape[1:3], (kh, kw), (sh, sw))
    x = jnp.pad(lhs, [(0, 0), *pads, (0, 0)]) if any(p for pair in pads for p in pair) else lhs
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    cols = [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
            for i in range(kh) for j in range(kw)]
    patches = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
    return jnp.dot(patches, rhs.reshape(kh * kw * cin, cout), precision=precision,
                   preferred_element_type=preferred_element_type)


def _conv_auto(*args: Any, **kwargs: Any) -> jax.Array:
    fn = im2col_conv if use_im2col("auto") else lax.conv_general_dilated
    return fn(*args, **kwargs)


_CONV_FNS: dict[str, Callable[..., jax.Array]] = {
    "auto": _conv_auto, "xla": lax.conv_general_dilated, "im2col": im2col_conv}


class Conv(nnx.Conv):
    """`nnx.Conv` (same `kernel` (kh, kw, cin, cout) and `bias` parameters, same init) whose
    convolution is `impl`: `auto`, `xla` or `im2col` (module docstring)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int | Sequence[int],
                 strides: int | Sequence[int] = 1, *, impl: str = "auto", rngs: nnx.Rngs,
                 **kwargs: Any) -> None:
        use_im2col(impl)  # an unknown name fails at construction, before any tracing
        super().__init__(in_features, out_features, kernel_size, strides,
                         conv_general_dilated=_CONV_FNS[impl], rngs=rngs, **kwargs)


def max_pool(x: jax.Array, window: int, impl: str = "auto") -> jax.Array:
    """Max-pool NHWC with a square window and stride `window` (no padding), as nnx.max_pool.

    With im2col (`use_im2col(impl)`) and sides divisible by `window`, it is a reshape and a
    max: its gradient is a compare-and-select that XLA:CPU fuses, where reduce_window's
    select_and_scatter is a slow loop there. Same outputs; on exact ties within a window the
    gradient is shared among the tied inputs instead of given to the first.
    """
    b, h, w, c = x.shape
    if not use_im2col(impl) or h % window or w % window:
        return nnx.max_pool(x, (window, window), strides=(window, window))
    return x.reshape(b, h // window, window, w // window, window, c).max(axis=(2, 4))
