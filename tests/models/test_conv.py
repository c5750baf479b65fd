"""The im2col convolution and reshape max-pool compute nnx.Conv's / nnx.max_pool's function,
with nnx.Conv's parameters.

Tolerance: float32, |a - b| <= 1e-5 + 1e-4 |b| for outputs and gradients (the two sum the
same products in another order; observed differences are ~1e-6 relative).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtl.errors import JtlError
from jtl.methods import build_method
from jtl.models import build_network, param_paths
from jtl.models.conv import Conv, im2col_conv, max_pool, use_im2col

TOL = {"rtol": 1e-4, "atol": 1e-5}

# (input shape, cin -> cout, kernel, stride, padding): LeNet's and ResNet's convolutions, and
# odd sides with SAME padding and a stride (uneven padding); one input channel (its patches are
# stacked on a leading axis) with both.
CASES = [
    ((3, 28, 28, 1), 1, 20, (5, 5), 1, "VALID"),
    ((2, 9, 7, 1), 1, 4, (3, 3), 2, "SAME"),
    ((3, 12, 12, 20), 20, 50, (5, 5), 1, "VALID"),
    ((2, 9, 9, 3), 3, 8, (3, 3), 1, "SAME"),
    ((2, 9, 9, 4), 4, 8, (3, 3), 2, "SAME"),
    ((2, 8, 8, 4), 4, 6, (1, 1), 2, "SAME"),
    ((2, 7, 10, 2), 2, 5, (3, 2), (2, 1), ((1, 0), (2, 1))),
]


def _pair(cin, cout, kernel, stride, padding, use_bias=True):
    ref = nnx.Conv(cin, cout, kernel, stride, padding=padding, use_bias=use_bias,
                   rngs=nnx.Rngs(0))
    fast = Conv(cin, cout, kernel, stride, padding=padding, use_bias=use_bias, impl="im2col",
                rngs=nnx.Rngs(0))
    return ref, fast


@pytest.mark.parametrize(("shape", "cin", "cout", "kernel", "stride", "padding"), CASES)
def test_im2col_conv_matches_nnx_conv_outputs_and_gradients(shape, cin, cout, kernel, stride,
                                                             padding):
    ref, fast = _pair(cin, cout, kernel, stride, padding)
    ref_state, fast_state = nnx.state(ref, nnx.Param), nnx.state(fast, nnx.Param)
    # Same parameters, same paths and shapes, same initial values (same rng draws).
    assert ref_state.to_pure_dict().keys() == fast_state.to_pure_dict().keys()
    for k in ("kernel", "bias"):
        np.testing.assert_array_equal(ref_state[k][...], fast_state[k][...])
    x = jax.random.normal(jax.random.key(1), shape)
    y_ref, g_ref = _outputs_and_grads(ref, x)
    y_fast, g_fast = _outputs_and_grads(fast, x)
    assert y_ref.shape == y_fast.shape
    np.testing.assert_allclose(y_fast, y_ref, **TOL)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), g_fast, g_ref)


def _outputs_and_grads(module, x):
    """Outputs, and gradients w.r.t. (params, x) of a non-linear loss of them, in one jit."""
    graphdef, params = nnx.split(module)

    def loss(params, x):
        y = nnx.merge(graphdef, params)(x)
        return jnp.sum(jnp.tanh(y) ** 2), y

    (_, y), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, x)
    return y, (grads[0].to_pure_dict(), grads[1])


def test_im2col_falls_back_to_lax_conv_for_dilations():
    x = jax.random.normal(jax.random.key(0), (1, 9, 9, 2))
    w = jax.random.normal(jax.random.key(1), (3, 3, 2, 4))
    dn = ("NHWC", "HWIO", "NHWC")
    ref = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", (1, 1), (2, 2), dn)
    np.testing.assert_allclose(im2col_conv(x, w, (1, 1), "SAME", (1, 1), (2, 2), dn), ref,
                               **TOL)


@pytest.mark.parametrize("impl", ["xla", "im2col"])
def test_max_pool_matches_nnx_max_pool(impl):
    x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))  # no ties: one max per window
    ref = nnx.max_pool(x, (2, 2), strides=(2, 2))
    np.testing.assert_array_equal(jax.jit(max_pool, static_argnums=(1, 2))(x, 2, impl), ref)
    g_ref = jax.jit(jax.grad(lambda x: jnp.sum(nnx.max_pool(x, (2, 2), strides=(2, 2)) ** 3)))(x)
    g = jax.jit(jax.grad(lambda x: jnp.sum(max_pool(x, 2, impl) ** 3)))(x)
    np.testing.assert_allclose(g, g_ref, **TOL)


@pytest.mark.parametrize("model", [
    {"name": "lenet", "input_shape": [28, 28, 1]},
    {"name": "resnet", "input_shape": [32, 32, 3]},
])
def test_every_conv_impl_has_the_parameters_of_nnx_conv(model):
    """Checkpoints stay loadable: the parameter paths and shapes of every conv_impl are those of
    the network built with plain nnx.Conv (`xla`). Shapes only (nnx.eval_shape): no compute."""
    method = build_method({"name": "source_only"})

    def shapes(impl):
        net = nnx.eval_shape(lambda: build_network({**model, "conv_impl": impl}, 10, method, 0))
        params = nnx.state(net, nnx.Param).to_pure_dict()
        return dict(zip(param_paths(params), [p.shape for p in jax.tree.leaves(params)],
                        strict=True))

    ref = shapes("xla")
    assert any(p.endswith("conv/kernel") for p in ref)
    assert shapes("im2col") == ref
    assert shapes("auto") == ref


def test_lenet_same_function_for_every_conv_impl():
    model = {"name": "lenet", "input_shape": [28, 28, 1], "channels": 4, "features": 16}
    method = build_method({"name": "source_only"})
    x = jax.random.uniform(jax.random.key(2), (4, 28, 28, 1))
    y = {}
    for impl in ("xla", "im2col"):
        net = build_network({**model, "conv_impl": impl}, 10, method, seed=0)
        y[impl] = nnx.jit(lambda net, x: net(x))(net, x)
    np.testing.assert_allclose(y["im2col"], y["xla"], **TOL)


def test_lenet_parameter_paths_are_unchanged():
    net = build_network({"name": "lenet", "input_shape": [28, 28, 1]}, 10,
                        build_method({"name": "source_only"}), seed=0)
    shapes = {p: np.shape(v) for p, v in zip(
        param_paths(nnx.state(net.backbone, nnx.Param).to_pure_dict()),
        jax.tree.leaves(nnx.state(net.backbone, nnx.Param).to_pure_dict()), strict=True)}
    assert shapes == {"blocks/0/conv/bias": (20,), "blocks/0/conv/kernel": (5, 5, 1, 20),
                      "blocks/1/conv/bias": (50,), "blocks/1/conv/kernel": (5, 5, 20, 50),
                      "blocks/2/linear/bias": (500,), "blocks/2/linear/kernel": (800, 500)}


def test_conv_impl_auto_is_im2col_on_cpu_and_gpu_and_unknown_names_fail():
    assert use_im2col("auto") == (jax.default_backend() in ("cpu", "gpu"))
    assert use_im2col("im2col") and not use_im2col("xla")
    with pytest.raises(JtlError, match="conv_impl='cudnn'"):
        Conv(1, 2, (3, 3), impl="cudnn", rngs=nnx.Rngs(0))


def test_im2col_forward_mode_and_value_outside_differentiation():
    """Undifferentiated, the value is lax.conv's; under jvp (forward mode, what grad transposes)
    the im2col value and tangents match lax.conv's, for tangents in x, in w, and in both."""
    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
    dx, dw = jax.random.normal(jax.random.key(2), x.shape), jax.random.normal(
        jax.random.key(3), w.shape)
    dn = ("NHWC", "HWIO", "NHWC")

    def ref(x, w):
        return jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=dn)

    def fast(x, w):
        return im2col_conv(x, w, (2, 2), "SAME", dimension_numbers=dn)

    np.testing.assert_array_equal(jax.jit(fast)(x, w), jax.jit(ref)(x, w))
    for tangents in ((dx, dw), (dx, jnp.zeros_like(w)), (jnp.zeros_like(x), dw)):
        y, dy = jax.jvp(fast, (x, w), tangents)
        y_ref, dy_ref = jax.jvp(ref, (x, w), tangents)
        np.testing.assert_allclose(y, y_ref, **TOL)
        np.testing.assert_allclose(dy, dy_ref, **TOL)
    g = jax.grad(lambda x: fast(x, w).sum())(x)  # w is a constant: its tangent a symbolic zero
    np.testing.assert_allclose(g, jax.grad(lambda x: ref(x, w).sum())(x), **TOL)
