"""Steps/s of the scan-chunked trainer vs a per-step jitted loop, for LeNet and MLP on digits.

Both modes run the trainer's own `make_chunk` on the same data in one process, so the ratios
are comparable even on a busy machine. The last lines print the ratios and what
`trainer.steps_per_call=auto` picks on this backend; `--check` exits non-zero when `auto` is
slower than the other mode for a model.

    python benchmarks/trainer_speed.py [--steps 500] [--batch-size 64] [--check]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from flax import nnx

from jtl.domains import LoadContext, build_domain
from jtl.domains.base import load_context
from jtl.methods import build_method
from jtl.models import build_network
from jtl.train.backend import runs_conv
from jtl.train.data import train_groups
from jtl.train.optim import build_optimizer
from jtl.train.step import init_state, make_chunk, make_step
from jtl.train.trainer import steps_per_call

MODELS = {"mlp": {"name": "mlp", "input_shape": [28, 28, 1], "hidden": [512, 256]},
          "lenet": {"name": "lenet", "input_shape": [28, 28, 1]}}


def steps_per_second(model_cfg: dict, ctx: LoadContext, steps: int, batch_size: int,
                     chunk: int, repeats: int) -> float:
    dom = build_domain({"name": "mnist"}, tuple(model_cfg["input_shape"]), ctx)
    method = build_method({"name": "source_only"})
    net = build_network(model_cfg, dom.num_classes, method, seed=0)
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    tx = build_optimizer({"name": "adam", "lr": 1e-3}, params, steps, ".*", None)
    data, pps = train_groups({"source": [dom], "target": [dom]}, method.uses)
    data = jax.device_put(data)
    fn = jax.jit(make_chunk(make_step(graphdef, method, tx, steps), batch_size, chunk, False,
                            pps=pps),
                 donate_argnums=0)
    key = jax.random.key(0)
    state = init_state(params, tx)
    state, _ = fn(state, data, key)  # compile
    jax.block_until_ready(state)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps // chunk):
            state, _ = fn(state, data, key)
        jax.block_until_ready(state)
        best = max(best, (steps // chunk) * chunk / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    ctx = load_context({})
    print(f"backend: {jax.default_backend()}, devices: {jax.devices()}, jax {jax.__version__}")
    print(f"steps per timing: {args.steps}, batch size {args.batch_size}, best of {args.repeats}")
    ratios, failed = {}, []
    for name in args.models:
        loop = steps_per_second(MODELS[name], ctx, args.steps, args.batch_size, 1, args.repeats)
        scan = steps_per_second(MODELS[name], ctx, args.steps, args.batch_size, args.steps,
                                args.repeats)
        auto = steps_per_call({"steps_per_call": "auto", "eval_every": args.steps},
                              runs_conv(build_network(MODELS[name], 10, build_method(
                                  {"name": "source_only"}), seed=0),
                                  MODELS[name]["input_shape"]))
        ratios[name] = scan / loop
        print(f"{name:6s} per-step loop: {loop:8.1f} steps/s   scan({args.steps}): "
              f"{scan:8.1f} steps/s   auto -> steps_per_call={auto}")
        picked, other = (scan, loop) if auto > 1 else (loop, scan)
        if picked < other:
            failed.append(name)
    for name, r in ratios.items():
        print(f"ratio scan/loop {name}: {r:.2f}x")
    if args.check and failed:
        raise SystemExit(f"auto picked the slower mode for: {', '.join(failed)}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
