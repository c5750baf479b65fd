"""uint8 storage with the pipeline in the step vs float32 arrays prepared on the host (the data
model before issue 20): device bytes of the train data and steps/s, in one process.

    python benchmarks/uint8_storage.py [--steps 300] [--model lenet_tllib] [--method dann]

The digits recipe's MNIST -> USPS data (MNIST 54,000 x 28 x 28 uint8; USPS 16 x 16 float32
resized to 28 x 28 in the step), the trainer's own `make_chunk`; "host float32" hands the
chunk the model's input already scaled and resized (`Split.x`), as the trainer did before.
Best of `--repeats` timings of `--steps`-step chunks, back to back.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.config import compose
from jtl.train.build import build_all
from jtl.train.data import train_groups
from jtl.train.optim import build_optimizer
from jtl.train.step import init_state, make_chunk, make_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="lenet_tllib")
    ap.add_argument("--method", default="dann")
    args = ap.parse_args()
    cfg = compose(["experiment=digits_m2u", f"model={args.model}", f"method={args.method}"])
    b = build_all(cfg)
    graphdef, params = nnx.split(b.net)
    params = params.to_pure_dict()
    tx = build_optimizer(cfg["optim"], params, args.steps, b.method.trainable, None)
    step = make_step(graphdef, b.method, tx, args.steps)
    batch = int(cfg["trainer"]["batch_size"])
    stored, pps = train_groups({"source": list(b.roles.sources), "target": [b.roles.target]},
                               b.method.uses)
    host = {g: {("x" if f != "label" else "y"): (dom.train.x if f != "label" else a)
                for f, a in fields.items()}
            for g, fields, dom in ((g, f, b.roles.source if g == "source" else b.roles.target)
                                   for g, f in stored.items())}
    variants = {"uint8 + pipeline in step": (jax.device_put(stored), pps),
                "host float32 (before)": (jax.device_put(host), None)}
    print(f"device: {jax.devices()[0].device_kind}; {args.model} {args.method}, batch {batch} "
          f"per domain, {args.steps}-step chunks")
    rates = {}
    for name, (data, p) in variants.items():
        nbytes = sum(a.nbytes for d in data.values() for a in d.values())
        fn = jax.jit(make_chunk(step, batch, args.steps, False, pps=p), donate_argnums=0)
        key = jax.random.key(0)
        fresh = jax.tree_util.tree_map(jnp.array, params)  # donated: a copy per variant
        state, _ = fn(init_state(fresh, tx), data, key)
        jax.block_until_ready(state)
        best = 0.0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            state, _ = fn(state, data, key)
            jax.block_until_ready(state)
            best = max(best, args.steps / (time.perf_counter() - t0))
        rates[name] = (best, nbytes)
        print(f"  {name:26s} train data {nbytes / 2**20:7.1f} MiB   {best:7.1f} steps/s")
    (r_new, b_new), (r_old, b_old) = rates.values()
    print(f"ratio: memory {b_old / b_new:.2f}x smaller, speed {r_new / r_old:.2f}x "
          "(uint8 + pipeline / host float32)")


if __name__ == "__main__":
    main()
