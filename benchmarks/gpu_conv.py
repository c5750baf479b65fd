"""LeNet steps/s with lax.conv (`model.conv_impl=xla`) vs im2col, under `lax.scan`, on the default
backend (meant for a GPU: `auto` picks lax.conv there; this checks that choice).

source_only and DANN steps of the digits recipe (batch 32 + 32) on synthetic data, chunks of
`--chunk` steps, both implementations timed alternately after warm-up; the last lines print
the ratios im2col / xla (> 1: im2col faster). About 30 s on a GPU; no PyTorch needed.

    python benchmarks/gpu_conv.py [--steps 1000] [--chunk 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics

import jax
from jtl_step import Chunk, synthetic_digits

from jtl.models.conv import use_im2col


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="steps per timing")
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=["source_only", "dann"])
    args = ap.parse_args()
    auto = "im2col" if use_im2col("auto") else "xla"
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.devices()[0]}; "
          f"conv_impl=auto means {auto} here")
    data = synthetic_digits()
    ratios = {}
    for method in args.methods:
        chunks = {impl: Chunk(method, data, conv_impl=impl, length=args.chunk)
                  for impl in ("xla", "im2col")}
        rates: dict[str, list[float]] = {impl: [] for impl in chunks}
        for c in chunks.values():
            c.run(2)  # compile, warm up
        for _ in range(args.rounds):
            for impl, c in chunks.items():
                rates[impl].append(c.steps_per_second(args.steps))
        med = {impl: statistics.median(r) for impl, r in rates.items()}
        ratios[method] = med["im2col"] / med["xla"]
        print(f"{method:12s} xla {med['xla']:8.1f} steps/s   im2col {med['im2col']:8.1f} steps/s",
              flush=True)
    for method, r in ratios.items():
        print(f"ratio im2col/xla {method}: {r:.2f}x")


if __name__ == "__main__":
    main()
