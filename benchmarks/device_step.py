"""The training step on this device: steps/s, achieved FLOP/s against the device's peak, the
host-wait fraction of a per-step loop, and 8 vmapped seeds against one.

    python benchmarks/device_step.py [--steps 500] [--batch-size 128]

For each model (MLP, LeNet) and method (source_only, DANN) at the digits recipe, with the
trainer's own `make_chunk`: FLOPs per step from XLA's cost analysis of the compiled step;
steps/s of a `--steps` scan (one host call: device time) and of a per-step loop (one host
call per step); host-wait = 1 - loop/scan, the share of a per-step loop's wall time the
device is left idle by the host; seeds/s of 8 seeds vmapped in one chunk vs one seed.
Ratios are measured in one process, back to back.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.config import compose
from jtl.train.build import build
from jtl.train.data import train_groups
from jtl.train.optim import build_optimizer
from jtl.train.step import init_state, make_chunk, make_step

# Dense peak FLOP/s (float32 on the vector units, TF32 on the matrix units): XLA's default
# precision lets float32 convolutions and matmuls run as TF32 on these GPUs.
PEAKS = {"H200": (67e12, 495e12), "H100": (67e12, 495e12), "A100": (19.5e12, 156e12)}


def setup(model: str, method: str, batch: int, steps: int):
    cfg = compose(["experiment=digits_m2u", f"model={model}", f"method={method}"])
    source, target, meth, net = build(cfg)
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    tx = build_optimizer(cfg["optim"], params, steps, meth.trainable, None)
    data, pps = train_groups({"source": [source], "target": [target]}, meth.uses)
    data = jax.device_put(data)
    step = make_step(graphdef, meth, tx, steps)
    return params, tx, data, lambda n: make_chunk(step, batch, n, False, pps=pps)


def timed(fn, state, data, keys, calls: int) -> float:
    state, _ = fn(state, data, keys)  # compile and warm up
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(calls):
        state, _ = fn(state, data, keys)
    jax.block_until_ready(state)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    dev = jax.devices()[0]
    peak = next((p for k, p in PEAKS.items() if k in dev.device_kind), None)
    print(f"device: {dev.device_kind} ({jax.default_backend()}), jax {jax.__version__}; "
          f"batch {args.batch_size} per domain, {args.steps}-step scans")
    for model in ("mlp", "lenet"):
        for method in ("source_only", "dann"):
            params, tx, data, chunk = setup(model, method, args.batch_size, args.steps)
            def fresh(params=params, tx=tx):  # donated by each timing: a copy every time
                return jax.tree_util.tree_map(jnp.copy, init_state(params, tx))

            state = fresh()
            key = jax.random.key(0)
            one = jax.jit(chunk(1), donate_argnums=0)
            flops = one.lower(state, data, key).compile().cost_analysis()
            flops = (flops[0] if isinstance(flops, list) else flops).get("flops", 0.0)
            scan = jax.jit(chunk(args.steps), donate_argnums=0)
            t_scan = timed(scan, fresh(), data, key, 2) / (2 * args.steps)
            t_loop = timed(one, fresh(), data, key, args.steps) / args.steps
            seeds = jnp.arange(args.seeds)
            many = jax.jit(jax.vmap(chunk(args.steps), in_axes=(0, None, 0)),
                           donate_argnums=0)
            stacked = jax.tree_util.tree_map(
                lambda a: jnp.stack([a] * args.seeds), fresh())
            keys = jax.vmap(jax.random.key)(seeds)
            t_many = timed(many, stacked, data, keys, 1) / args.steps
            rate = flops / t_scan
            of_peak = (f"{rate / peak[0]:.1%} of f32 peak, {rate / peak[1]:.2%} of TF32"
                       if peak else "no peak known for this device")
            wait = (f"{1 - t_scan / t_loop:.0%}" if t_loop > t_scan
                    else "none (the scan is slower than the loop here)")
            print(f"{model:5s} {method:11s} {1 / t_scan:9.1f} steps/s (scan)  "
                  f"{1 / t_loop:9.1f} (per-step loop)  {flops / 1e9:6.2f} GFLOP/step  "
                  f"{rate / 1e12:6.2f} TFLOP/s ({of_peak})  host-wait {wait}"
                  f"  {args.seeds} vmapped seeds: {args.seeds / t_many:9.1f} seed-steps/s "
                  f"= {t_scan * args.seeds / t_many:.2f}x one seed's")


if __name__ == "__main__":
    main()
