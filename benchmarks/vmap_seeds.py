"""8 seeds in one vmapped program (`trainer.seeds`) vs 8 sequential runs, wall time with
compilation, on the digits recipe (MNIST -> USPS) for the MLP and LeNet.

    .venv/bin/python benchmarks/vmap_seeds.py [--steps 500] [--seeds 8] [--models mlp lenet_tllib]

Both modes run in this process, back to back, through `train_and_evaluate` (evaluation at the
end only), so each sequential run compiles its own step as a separate run does; the ratio
sequential / vmapped is printed last.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax

from jtl.config import compose
from jtl.train import train_and_evaluate


def cfg(model: str, method: str, steps: int, extra: list[str]) -> list[str]:
    return ["experiment=digits_m2u", f"model={model}", f"method={method}",
            f"trainer.steps={steps}", f"trainer.eval_every={steps}",
            f"trainer.checkpoint_every={steps}", f"trainer.log_every={steps}",
            "trainer.progress=false", "trainer.tensorboard=false", *extra]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--method", default="source_only")
    ap.add_argument("--models", nargs="+", default=["mlp", "lenet_tllib"])
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    print(f"backend: {jax.default_backend()}, devices: {jax.devices()}, jax {jax.__version__}")
    print(f"{args.method}, {args.steps} steps, {len(seeds)} seeds, digits recipe (batch 32)")
    ratios = {}
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            for s in seeds:
                train_and_evaluate(compose(cfg(model, args.method, args.steps,
                                                   [f"seed={s}"])), Path(tmp, f"seq{s}"))
            seq = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = train_and_evaluate(compose(cfg(
                model, args.method, args.steps, [f"trainer.seeds={seeds}"])), Path(tmp, "vm"))
            vm = time.perf_counter() - t0
        spc = out["runs"][0]["steps_per_call"]
        ratios[model] = seq / vm
        print(f"{model:6s} sequential: {seq:7.1f} s   vmapped: {vm:7.1f} s   "
              f"(steps_per_call {spc})")
    for model, r in ratios.items():
        print(f"ratio sequential/vmapped {model}: {r:.2f}x")


if __name__ == "__main__":
    main()
