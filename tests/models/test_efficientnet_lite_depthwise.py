"""EfficientNet-Lite's depthwise tap sum (jtl/models/efficientnet_lite/depthwise.py) equals
`lax.conv_general_dilated(feature_group_count=C)`, in value and in both gradients, for the
kernels (3, 5) and strides (1, 2) Lite uses, odd and even sizes, TF "SAME" and explicit
padding; and the model's depthwise convs go through it with nnx.Conv's parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from jtl.models.efficientnet_lite import depthwise as D
from jtl.models.efficientnet_lite import modeling as M

NHWC = ("NHWC", "HWIO", "NHWC")
TOL = {"rtol": 1e-5, "atol": 1e-5}


def xla_depthwise(x: jax.Array, w: jax.Array, strides: tuple[int, int], padding) -> jax.Array:
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC,
                                    feature_group_count=x.shape[-1],
                                    precision=lax.Precision.HIGHEST)


def taps(x: jax.Array, w: jax.Array, strides: tuple[int, int], padding) -> jax.Array:
    return D.depthwise_conv_general_dilated(x, w, strides, padding,
                                            dimension_numbers=NHWC,
                                            feature_group_count=x.shape[-1])


def _close(got, want) -> None:
    # scale the tolerance by the magnitude (gradients sum over B*OH*OW products)
    scale = float(jnp.abs(want).max()) or 1.0
    np.testing.assert_allclose(np.asarray(got) / scale, np.asarray(want) / scale, **TOL)


# kernels 3 and 5 x strides 1 and 2 x odd and even sizes under TF "SAME"; a non-square input
# under VALID and under explicit (cropping-free, uneven) padding
CASES = [(k, s, h, h, "SAME") for k in (3, 5) for s in (1, 2) for h in (15, 14)] + [
    (5, 2, 9, 12, "VALID"), (3, 2, 9, 12, ((2, 1), (0, 3)))]


@pytest.mark.parametrize(("k", "s", "h", "w", "padding"), CASES)
def test_taps_equal_xla_grouped_conv(k, s, h, w, padding):
    kx, kw, kg = jax.random.split(jax.random.key(k * 100 + s * 10 + h), 3)
    c = 6
    x = jax.random.normal(kx, (2, h, w, c))
    wt = jax.random.normal(kw, (k, k, 1, c))
    want = xla_depthwise(x, wt, (s, s), padding)
    got = jax.jit(lambda x, wt: taps(x, wt, (s, s), padding))(x, wt)
    assert got.shape == want.shape
    _close(got, want)
    # a non-trivial cotangent, so both gradients see every output position differently
    g = jax.random.normal(kg, want.shape)

    def loss(fn):
        return lambda x, wt: (fn(x, wt, (s, s), padding) * g).sum()

    want_dx, want_dw = jax.grad(loss(xla_depthwise), argnums=(0, 1))(x, wt)
    got_dx, got_dw = jax.jit(jax.grad(loss(taps), argnums=(0, 1)))(x, wt)
    _close(got_dx, want_dx)
    _close(got_dw, want_dw)


def test_vmap_and_bfloat16():
    x = jax.random.normal(jax.random.key(0), (3, 2, 10, 10, 4))
    wt = jax.random.normal(jax.random.key(1), (5, 5, 1, 4))
    got = jax.vmap(lambda x: taps(x, wt, (2, 2), "SAME"))(x)
    want = jax.vmap(lambda x: xla_depthwise(x, wt, (2, 2), "SAME"))(x)
    _close(got, want)
    gb = taps(x[0].astype(jnp.bfloat16), wt.astype(jnp.bfloat16), (1, 1), "SAME")
    assert gb.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(gb, np.float32),
                               np.asarray(xla_depthwise(x[0], wt, (1, 1), "SAME")),
                               rtol=5e-2, atol=5e-2)


def test_other_convs_fall_back_to_lax():
    """A channel multiplier or a dilation is not a tap sum: the hook hands it to lax."""
    x = jax.random.normal(jax.random.key(0), (1, 8, 8, 4))
    w2 = jax.random.normal(jax.random.key(1), (3, 3, 1, 8))  # multiplier 2
    np.testing.assert_array_equal(
        D.depthwise_conv_general_dilated(x, w2, (1, 1), "SAME", dimension_numbers=NHWC,
                                         feature_group_count=4),
        lax.conv_general_dilated(x, w2, (1, 1), "SAME", dimension_numbers=NHWC,
                                 feature_group_count=4))


def test_model_depthwise_uses_taps_with_nnx_params():
    """ConvBN(groups=C) keeps nnx.Conv's kernel (k, k, 1, C) and gives the XLA conv's
    output, TF "SAME" at stride 2 included."""
    layer = M.ConvBN(8, 8, 5, 2, True, nnx.Rngs(0), groups=8)
    assert layer.conv.kernel.shape == (5, 5, 1, 8)
    assert layer.conv.conv_general_dilated is D.depthwise_conv_general_dilated
    x = jax.random.normal(jax.random.key(2), (2, 15, 15, 8))
    got = layer.conv(x)
    _close(got, xla_depthwise(x, layer.conv.kernel[...], (2, 2), "SAME"))
    full = M.ConvBN(3, 8, 3, 2, True, nnx.Rngs(0))  # groups 1 (the stem): plain lax
    assert full.conv.conv_general_dilated is lax.conv_general_dilated


def test_pointwise_is_the_1x1_conv():
    """Lite's 1x1 convs (expand, project, head) are a matmul on the CPU, with lax's values
    and gradients; a strided 1x1 conv goes to lax."""
    layer = M.ConvBN(6, 10, 1, 1, False, nnx.Rngs(0))
    assert layer.conv.conv_general_dilated is D.pointwise_conv_general_dilated
    x = jax.random.normal(jax.random.key(3), (2, 7, 9, 6))
    wt = layer.conv.kernel[...]
    g = jax.random.normal(jax.random.key(4), (2, 7, 9, 10))

    def loss(fn):
        return lambda x, wt: (fn(x, wt, (1, 1), "SAME", dimension_numbers=NHWC) * g).sum()

    want = jax.grad(loss(lambda *a, **k: lax.conv_general_dilated(
        *a, precision=lax.Precision.HIGHEST, **k)), argnums=(0, 1))(x, wt)
    got = jax.jit(jax.grad(loss(D.pointwise_conv_general_dilated), argnums=(0, 1)))(x, wt)
    _close(layer.conv(x), lax.conv_general_dilated(x, wt, (1, 1), "SAME",
                                                   dimension_numbers=NHWC))
    for a, b in zip(got, want, strict=True):
        _close(a, b)
    np.testing.assert_array_equal(
        D.pointwise_conv_general_dilated(x, wt, (2, 2), "SAME", dimension_numbers=NHWC),
        lax.conv_general_dilated(x, wt, (2, 2), "SAME", dimension_numbers=NHWC))
