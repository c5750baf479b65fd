"""Convolution and pooling layers that are fast on XLA:CPU, with nnx.Conv's parameters.

XLA:CPU runs `lax.conv_general_dilated` slowly, and ~6x slower still inside a loop body
(`lax.scan`), which kept conv nets at one compiled call per step. The same convolution
written as im2col -- the kh*kw shifted slices of the (padded) input concatenated on the
channel axis, then one matmul with the kernel reshaped to (kh*kw*cin, cout) -- is only
slices, a concatenation and a dot, which XLA:CPU runs fast at top level and in a loop alike
(benchmarks/README.md). It is used where it pays, under differentiation (a custom JVP, so
grad's backward pass is im2col's transpose: pads, slices and matmuls); undifferentiated
calls (evaluation, features, batches of 1000) keep lax.conv, whose forward XLA:CPU runs fast
at top level. `Conv` is `nnx.Conv` with that function plugged into its `conv_general_dilated`
hook, so parameter paths, shapes and initialisation are nnx.Conv's and existing checkpoints
load unchanged.

`impl`: `xla` (lax.conv), `im2col`, or `auto`, decided when the function is traced: im2col on
CPU and GPU, lax.conv elsewhere. Measured on LeNet's digits steps (benchmarks/README.md): on
XLA:CPU im2col under scan runs 1.6-2x lax.conv per step, on an H200 im2col runs 1.3-1.9x
lax.conv (cuDNN's kernels do not pay off at 28x28 inputs and 20-50 channels). A network whose
convolutions are wider can pin `xla` (ResNet does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jtl.errors import JtlError

CONV_IMPLS = ("auto", "xla", "im2col")
_NHWC = ("NHWC", "HWIO", "NHWC")


def use_im2col(impl: str) -> bool:
    """Whether `impl` means im2col on the backend being traced for."""
    if impl not in CONV_IMPLS:
        raise JtlError(f"model.conv_impl={impl!r}: use one of {', '.join(CONV_IMPLS)}")
    return impl == "im2col" or (impl == "auto" and jax.default_backend() in ("cpu", "gpu"))


def _pads(padding: str | Sequence[tuple[int, int]], shape: Sequence[int],
          window: Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    if isinstance(padding, str):
        pads = lax.padtype_to_pads(shape, window, strides, padding)
    else:
        pads = padding
    return [(int(lo), int(hi)) for lo, hi in pads]


def _slices(x: jax.Array, kh: int, kw: int, strides: tuple[int, int],
            pads: tuple[tuple[int, int], ...]) -> list[jax.Array]:
    """The kh*kw shifted (strided) slices (B, OH, OW, C) of the padded input, in the kernel's
    (i, j) order."""
    sh, sw = strides
    if any(p for pair in pads for p in pair):
        x = jnp.pad(x, [(0, 0), *pads, (0, 0)])
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    return [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
            for i in range(kh) for j in range(kw)]


def _patches(x: jax.Array, kh: int, kw: int, strides: tuple[int, int],
             pads: tuple[tuple[int, int], ...]) -> tuple[jax.Array, int]:
    """im2col's patches and the axis that holds their kh*kw*C columns (kernel (i, j, c) order):
    (B, OH, OW, kh*kw*C), axis 3, the slices concatenated on the channel axis; with one input
    channel (a first layer on grey images) (kh*kw, B, OH, OW), axis 0, the slices stacked: on
    the channel axis their columns would interleave single floats, a slow copy on XLA:CPU,
    where stacked each slice is one contiguous block."""
    cols = _slices(x, kh, kw, strides, pads)
    if len(cols) == 1:
        return cols[0], 3
    if x.shape[-1] == 1:
        return jnp.stack([c[..., 0] for c in cols]), 0
    return jnp.concatenate(cols, axis=-1), 3


def _im2col(x: jax.Array, w: jax.Array, strides: tuple[int, int],
            pads: tuple[tuple[int, int], ...]) -> jax.Array:
    kh, kw, cin, cout = w.shape
    patches, axis = _patches(x, kh, kw, strides, pads)
    return lax.dot_general(patches, w.reshape(kh * kw * cin, cout), (((axis,), (0,)), ((), ())))


def _weight_tangent(x: jax.Array, dw: jax.Array, strides: tuple[int, int],
                    pads: tuple[tuple[int, int], ...]) -> jax.Array:
    """`_im2col(x, dw)`, the weight's tangent, from patches built channels-first as one
    (kh*kw*C, N) matrix. Its transpose, the weight gradient patches^T @ g, is then a plain
    (K, N) x (N, cout) product, which XLA:CPU gives to YNNPACK; from im2col's (N, K) patches
    XLA folds the transpose into the dot and runs it on Eigen, 1.7-2.8x slower than the
    forward's product of the same size (benchmarks/README.md, profile)."""
    kh, kw, cin, cout = dw.shape
    b = x.shape[0]
    planes = jnp.moveaxis(x, -1, 0).reshape(cin * b, *x.shape[1:3], 1)  # (C*B, H, W, 1)
    cols = _slices(planes, kh, kw, strides, pads)  # kh*kw of (C*B, OH, OW, 1)
    oh, ow = cols[0].shape[1:3]
    patches = jnp.stack(cols).reshape(kh * kw * cin, b * oh * ow)
    y = lax.dot_general(patches, dw.reshape(kh * kw * cin, cout), (((0,), (0,)), ((), ())))
    return y.reshape(b, oh, ow, cout)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _conv(x: jax.Array, w: jax.Array, strides: tuple[int, int],
          pads: tuple[tuple[int, int], ...]) -> jax.Array:
    # Not differentiated (evaluation, features): lax.conv, whose forward XLA:CPU runs fast at
    # top level, also on evaluation's large batches where im2col's patches leave the caches.
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC)


def _conv_jvp(strides, pads, primals, tangents):
    # Differentiated (training): im2col. Its transpose is slices/pads and matmuls, with no
    # backward convolution, which XLA:CPU runs slowly, and far more slowly inside a scan. The
    # weight's term on CPU has patches of its own layout, for its transpose's matmul (GPUs
    # keep the measured plain form: cuBLAS takes transposed operands as they are).
    (x, w), (dx, dw) = primals, tangents
    y = _im2col(x, w, strides, pads)
    w_term = _weight_tangent if jax.default_backend() == "cpu" else _im2col
    terms = ([] if isinstance(dx, SymbolicZero) else [_im2col(dx, w, strides, pads)]) + (
        [] if isinstance(dw, SymbolicZero) else [w_term(x, dw, strides, pads)])
    dy = functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)
    return y, dy


_conv.defjvp(_conv_jvp, symbolic_zeros=True)


def im2col_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                padding: str | Sequence[tuple[int, int]], lhs_dilation: Sequence[int] = (1, 1),
                rhs_dilation: Sequence[int] = (1, 1), dimension_numbers: Any = None,
                feature_group_count: int = 1, precision: Any = None,
                preferred_element_type: Any = None, **kwargs: Any) -> jax.Array:
    """A 2-D NHWC x HWIO convolution whose derivatives are im2col + matmuls (same signature as
    the part of `lax.conv_general_dilated` that nnx.Conv calls); its undifferentiated value is
    lax.conv's. Dilations, groups, precision and sharding options go to lax.conv."""
    if (lhs.ndim != 4 or tuple(lhs_dilation) != (1, 1) or tuple(rhs_dilation) != (1, 1)
            or feature_group_count != 1 or precision is not None
            or preferred_element_type is not None or kwargs.get("out_sharding") is not None):
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, precision=precision,
            preferred_element_type=preferred_element_type, **kwargs)
    strides = (int(window_strides[0]), int(window_strides[1]))
    pads = tuple(_pads(padding, lhs.shape[1:3], rhs.shape[:2], strides))
    return _conv(lhs, rhs, strides, pads)


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
