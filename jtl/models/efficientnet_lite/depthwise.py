"""Depthwise convolution as a sum over kernel taps, for XLA:CPU.

XLA:CPU runs `lax.conv_general_dilated(..., feature_group_count=C)` (depthwise) very slowly,
the backward pass most of all (jax-ml/jax#13800 reports the backward on GPUs too): on
EfficientNet-Lite0's depthwise layers at 112 px, batch 8, one thread (jax 0.10.2, a loaded
2-core machine), 5-100 ms forward and 80-850 ms forward + backward per layer, against 0.1-3 ms
and 0.5-25 ms here. Written as what it is, a sum over the k*k kernel taps of shifted (strided)
slices of the padded input times one weight per channel, it is slices, multiplies and adds,
which XLA:CPU fuses into one loop. The backward pass is written out too (`jax.custom_vjp`):
autodiff's transpose of the taps (k*k pads added up) made the input gradient 3-7x slower.
The whole Lite0 training step runs 3.3x faster (benchmarks/README.md, `pretrained_step.py`).

- the input gradient is the same tap sum over the output gradient, dilated by the stride
  (zeros between its rows and columns) and padded, with the kernel flipped, stride 1;
- the kernel gradient is, per tap, the sum over batch and space of the tap's input slice times
  the output gradient: k*k reductions to one value per channel.

`depthwise_conv_general_dilated` has the signature of the part of `lax.conv_general_dilated`
that `nnx.Conv` calls, so it plugs into nnx.Conv's `conv_general_dilated` hook: parameter
paths, kernel shape (kh, kw, 1, C) and initialisation stay nnx.Conv's, and checkpoints load
unchanged. It uses the taps on the CPU backend only (`jax.default_backend() == "cpu"`, decided
when traced); on GPU and TPU, and for any call that is not a plain 2-D NHWC depthwise
convolution (dilations, channel multipliers, precision or sharding options), it is
lax.conv_general_dilated itself. Padding is any lax padding ("SAME" is TensorFlow's, the
extra row/column at the bottom/right for stride 2, exactly as lax computes it).

Products are accumulated in float32 for lower-precision inputs (bfloat16), as the XLA conv
does. Reverse mode (grad, vjp) and vmap are supported; forward mode (jax.jvp) is not, since
the derivative is a custom VJP (jtl's training steps use grad only).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Pads = tuple[tuple[int, int], tuple[int, int]]
_NHWC = ("NHWC", "HWIO", "NHWC")


def _acc_dtype(dtype: Any) -> Any:
    """float32 for half-precision inputs, the input's own dtype otherwise."""
    return jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype


def _taps(xp: jax.Array, w: jax.Array, strides: tuple[int, int], out: tuple[int, int],
          flip: bool = False) -> jax.Array:
    """sum over (i, j) of xp[:, i::sh, j::sw, :][:, :oh, :ow] * w[i, j, 0] (w[k-1-i, k-1-j]
    when `flip`), accumulated in `_acc_dtype`."""
    kh, kw = w.shape[:2]
    acc = _acc_dtype(xp.dtype)
    w = w.astype(acc)
    y = None
    for i in range(kh):
        for j in range(kw):
            tap = w[kh - 1 - i, kw - 1 - j, 0] if flip else w[i, j, 0]
            t = _tap(xp, i, j, strides, out).astype(acc) * tap
            y = t if y is None else y + t
    assert y is not None
    return y


def _tap(xp: jax.Array, i: int, j: int, strides: tuple[int, int],
         out: tuple[int, int]) -> jax.Array:
    """The input rows and columns kernel tap (i, j) meets: (B, OH, OW, C) strided slices."""
    (sh, sw), (oh, ow) = strides, out
    return xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]


def _out_size(n: int, k: int, s: int, pad: tuple[int, int]) -> int:
    return (n + pad[0] + pad[1] - k) // s + 1


def _pad(x: jax.Array, pads: Pads, interior: tuple[int, int] = (0, 0)) -> jax.Array:
    """lax.pad on H and W (negative padding crops, as in lax.conv's explicit padding)."""
    (ph, pw), (ih, iw) = pads, interior
    return lax.pad(x, jnp.zeros((), x.dtype),
                   [(0, 0, 0), (ph[0], ph[1], ih), (pw[0], pw[1], iw), (0, 0, 0)])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def depthwise_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads) -> jax.Array:
    """(B, H, W, C) x (kh, kw, 1, C) -> (B, OH, OW, C): lax.conv_general_dilated with
    feature_group_count=C, NHWC/HWIO, explicit `pads` ((lo, hi) for H and W)."""
    return _forward(x, w, strides, pads)


def _forward(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads) -> jax.Array:
    kh, kw = w.shape[:2]
    out = (_out_size(x.shape[1], kh, strides[0], pads[0]),
           _out_size(x.shape[2], kw, strides[1], pads[1]))
    return _taps(_pad(x, pads), w, strides, out).astype(x.dtype)


def _fwd(x: jax.Array, w: jax.Array, strides: tuple[int, int],
         pads: Pads) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return _forward(x, w, strides, pads), (x, w)


def _bwd(strides: tuple[int, int], pads: Pads, res: tuple[jax.Array, jax.Array],
         g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, w = res
    kh, kw = w.shape[:2]
    (sh, sw), (ph, pw) = strides, pads
    h, wd = x.shape[1:3]
    oh, ow = g.shape[1:3]
    # dx[m] = sum_i g_dilated[m + lo - i] w[i]: a stride-1 tap sum over the dilated g padded
    # by k-1-lo before, to length H + k - 1, with the kernel flipped.
    lo_h, lo_w = kh - 1 - ph[0], kw - 1 - pw[0]
    hi_h = h + kh - 1 - lo_h - ((oh - 1) * sh + 1)
    hi_w = wd + kw - 1 - lo_w - ((ow - 1) * sw + 1)
    gp = _pad(g, ((lo_h, hi_h), (lo_w, hi_w)), (sh - 1, sw - 1))
    dx = _taps(gp, w, (1, 1), (h, wd), flip=True).astype(x.dtype)
    # dw[i, j, 0, c] = sum over b, o of x_padded[b, o*s + (i, j), c] * g[b, o, c]
    acc = _acc_dtype(x.dtype)
    xp, ga = _pad(x, pads), g.astype(acc)
    dw = jnp.stack([(_tap(xp, i, j, strides, (oh, ow)).astype(acc) * ga).sum((0, 1, 2))
                    for i in range(kh) for j in range(kw)])
    return dx, dw.reshape(w.shape).astype(w.dtype)


depthwise_conv.defvjp(_fwd, _bwd)


def use_taps() -> bool:
    """Whether the backend being traced for is the CPU, where the tap sum pays."""
    return jax.default_backend() == "cpu"


def _plain_nhwc(lhs: jax.Array, rhs: jax.Array, lhs_dilation: Sequence[int] | None,
                rhs_dilation: Sequence[int] | None, dimension_numbers: Any,
                preferred_element_type: Any, kwargs: dict[str, Any]) -> bool:
    """What both hooks need to replace the XLA conv: the CPU, a 2-D NHWC/HWIO conv without
    dilation, output dtype or sharding options."""
    return (lhs.ndim == 4 and rhs.ndim == 4 and use_taps()
            and tuple(lhs_dilation or (1, 1)) == (1, 1)
            and tuple(rhs_dilation or (1, 1)) == (1, 1)
            and dimension_numbers in (None, _NHWC, lax.conv_dimension_numbers(
                lhs.shape, rhs.shape, _NHWC))
            and preferred_element_type is None and kwargs.get("out_sharding") is None)


def depthwise_conv_general_dilated(
        lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
        padding: str | Sequence[tuple[int, int]], lhs_dilation: Sequence[int] | None = None,
        rhs_dilation: Sequence[int] | None = None, dimension_numbers: Any = None,
        feature_group_count: int = 1, precision: Any = None,
        preferred_element_type: Any = None, **kwargs: Any) -> jax.Array:
    """nnx.Conv's `conv_general_dilated` hook: the tap sum (`depthwise_conv`) for a plain 2-D
    NHWC depthwise convolution on the CPU, lax.conv_general_dilated for anything else."""
    plain = (_plain_nhwc(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
                         preferred_element_type, kwargs)
             and feature_group_count == lhs.shape[-1] == rhs.shape[-1] and rhs.shape[2] == 1
             and precision is None)
    if not plain:
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, precision=precision,
            preferred_element_type=preferred_element_type, **kwargs)
    strides = (int(window_strides[0]), int(window_strides[1]))
    if isinstance(padding, str):
        pad_list = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
    else:
        pad_list = list(padding)
    (a, b), (c, d) = pad_list
    return depthwise_conv(lhs, rhs, strides, ((int(a), int(b)), (int(c), int(d))))


def pointwise_conv_general_dilated(
        lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
        padding: str | Sequence[tuple[int, int]], lhs_dilation: Sequence[int] | None = None,
        rhs_dilation: Sequence[int] | None = None, dimension_numbers: Any = None,
        feature_group_count: int = 1, precision: Any = None,
        preferred_element_type: Any = None, **kwargs: Any) -> jax.Array:
    """nnx.Conv's hook for Lite's 1x1 convs: on the CPU a plain 1x1 stride-1 NHWC conv is the
    matmul (B, H, W, Cin) x (Cin, Cout) it is. XLA:CPU's conv backward wraps it in transposes
    of the activations; as a dot its gradients are dots too (measured: the Lite0 step at 224 px,
    batch 32, 18% less time). Anything else, or another backend: lax.conv_general_dilated."""
    zero = ((0, 0), (0, 0))
    plain = (_plain_nhwc(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
                         preferred_element_type, kwargs)
             and rhs.shape[:2] == (1, 1) and tuple(window_strides) == (1, 1)
             and feature_group_count == 1
             and (padding in ("SAME", "VALID")
                  or (not isinstance(padding, str)
                      and tuple(tuple(p) for p in padding) == zero)))
    if not plain:
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, precision=precision,
            preferred_element_type=preferred_element_type, **kwargs)
    return lax.dot_general(lhs, rhs[0, 0], (((3,), (0,)), ((), ())), precision=precision)
