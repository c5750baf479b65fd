"""benchmarks/profile_step.py reads jax.profiler's per-instruction times and the compiled HLO's
Python stacks, and sorts ops into the classes of its table (jtl and PyTorch alike)."""

from __future__ import annotations

import importlib.util
import sys

import jax
import jax.numpy as jnp

from jtl.models.conv import im2col_conv, max_pool
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("profile_step", ROOT / "benchmarks/profile_step.py")
ps = sys.modules["profile_step"] = importlib.util.module_from_spec(spec)  # its dataclass
spec.loader.exec_module(ps)


def _train_step():
    """A conv (1 input channel, as LeNet's first) -> pool -> dense loss and its SGD update."""
    def loss(params, x):
        y = im2col_conv(x, params["conv"], (1, 1), "VALID",
                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = jax.nn.relu(max_pool(y, 2, "im2col"))
        return jnp.sum(jnp.tanh(y.reshape(len(x), -1) @ params["dense"]) ** 2)

    def step(params, x):
        g = jax.grad(loss)(params, x)
        return jax.tree.map(lambda p, g: p - 0.01 * g, params, g)

    params = {"conv": jax.random.normal(jax.random.key(0), (5, 5, 1, 8)),
              "dense": jax.random.normal(jax.random.key(1), (12 * 12 * 8, 10))}
    x = jax.random.uniform(jax.random.key(2), (16, 28, 28, 1))
    return jax.jit(step), params, x


def test_hlo_ops_get_their_python_stack_and_class():
    fn, params, x = _train_step()
    instrs = ps.parse_hlo(fn.lower(params, x).compile().as_text())
    classes = {ps.classify_jtl(i) for i in instrs.values()}
    assert {"conv fwd matmuls", "conv bwd matmuls", "im2col slices/concat/pads",
            "dense matmuls (fwd+bwd)"} <= classes, classes
    assert classes <= set(ps.CLASSES)
    # The conv's matmuls carry conv.py's functions on their stack, innermost first.
    conv_dots = [i for i in instrs.values() if ps.classify_jtl(i).startswith("conv ")]
    assert all(any(f.endswith(("conv.py:_im2col", "conv.py:_weight_tangent")) for f in i.funcs)
               for i in conv_dots)
    assert any(i.backward for i in conv_dots) and any(not i.backward for i in conv_dots)


def test_profiled_op_times_are_the_compiled_instructions():
    fn, params, x = _train_step()
    instrs = ps.parse_hlo(fn.lower(params, x).compile().as_text())
    fn(params, x)  # compiled before the trace

    def run():
        for _ in range(3):
            jax.block_until_ready(fn(params, x))

    spent = ps.op_times(run, instrs)
    assert spent and set(spent) <= set(instrs)
    assert all(t > 0 for t in spent.values())
    assert any(ps.classify_jtl(instrs[n]).startswith("conv ") for n in spent)


def test_torch_ops_classified_by_autograd_node_and_width():
    bwd = "autograd::engine::evaluate_function: "
    assert ps.classify_torch(["aten::mm", bwd + "ConvolutionBackward0"], []) == \
        "conv bwd matmuls"
    assert ps.classify_torch(["aten::max_pool2d_with_indices_backward",
                              bwd + "MaxPool2DWithIndicesBackward0"], []) == "max-pool bwd"
    assert ps.classify_torch(["aten::mm", bwd + "MmBackward0"], [[[64, 500], [500, 10]]]) == \
        "dense matmuls (fwd+bwd)"
    assert ps.classify_torch(["aten::addmm", "aten::linear"], [[[64, 500], [500, 1024]]]) == \
        "discriminator (fwd+bwd)"
    assert ps.classify_torch(["aten::mkldnn_convolution", "aten::conv2d"], []) == \
        "conv fwd matmuls"
    assert ps.classify_torch(["aten::add_", "Optimizer.step#SGD.step"], [[[1024, 1024]]]) == \
        "optimizer update"
    assert ps.classify_torch(["aten::relu"], [[[64, 500]]]) == "elementwise/fusions"


def test_as_wall_ms_scales_shares_to_the_wall_time():
    ms = ps.as_wall_ms({"conv fwd matmuls": 3.0, "other": 1.0}, wall=0.002, fill_other=False)
    assert abs(ms["conv fwd matmuls"] - 1.5) < 1e-9 and abs(ms["other"] - 0.5) < 1e-9
    # PyTorch: time no op covers is Python and dispatch, counted as `other`.
    ms = ps.as_wall_ms({"conv fwd matmuls": 0.001}, wall=0.004, fill_other=True)
    assert abs(ms["conv fwd matmuls"] - 1.0) < 1e-9 and abs(ms["other"] - 3.0) < 1e-9
