"""A random hyper-parameter search of 20 samples in one vmapped program (`trainer.search`) vs
the same 20 runs one after another, wall time with compilation, on DomainBed's ColoredMNIST
(+90% and +80% the sources, -90% the unseen target).

    .venv/bin/python benchmarks/vmap_search.py [--samples 20] [--steps 100] [--method irm]
        [--models mnist_cnn mlp]

The vmapped search runs first; then each of its lanes' saved configs is trained as a separate
run (the same values, an ordinary run each), so both modes train exactly the same runs. Both
in this process, through `train_and_evaluate`, evaluation at the end only, with a fresh
compilation cache; the ratio sequential / vmapped is printed last.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# A cache of this benchmark's own: no program compiled before it is reused.
os.environ.setdefault("JTL_COMPILE_CACHE", tempfile.mkdtemp(prefix="jtl-bench-xla-"))

import jax

from jtl import rundir
from jtl.config import compose
from jtl.train import train_and_evaluate

SPLITS = "val_fraction: 0.03, test_fraction: 0.02"  # experiments/domainbed/run.sh's CPU splits


def overrides(model: str, method: str, steps: int, batch: int, samples: int) -> list[str]:
    shape = [] if model == "mnist_cnn" else ["model.input_shape=[28,28,2]"]
    return [f"method={method}",
            f"sources=[{{name: colored_mnist, env: '+90%', {SPLITS}}}, "
            f"{{name: colored_mnist, env: '+80%', {SPLITS}}}]",
            "domain@target=colored_mnist", "target.env=-90%", "target.val_fraction=0",
            "target.test_fraction=0.06", f"model={model}", *shape, "optim=adam",
            f"trainer.steps={steps}", f"trainer.batch_size={batch}",
            f"trainer.eval_every={steps}", f"trainer.checkpoint_every={steps}",
            f"trainer.log_every={steps}", "trainer.max_loss=null", "trainer.progress=false",
            "trainer.tensorboard=false", f"trainer.search={{samples: {samples}}}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8, help="per environment")
    ap.add_argument("--method", default="irm")
    ap.add_argument("--models", nargs="+", default=["mnist_cnn", "mlp"])
    args = ap.parse_args()
    print(f"backend: {jax.default_backend()}, devices: {jax.devices()}, jax {jax.__version__}")
    print(f"{args.method}, {args.samples} samples, {args.steps} steps, batch {args.batch} per "
          "environment, ColoredMNIST (+90%, +80% -> -90%)")
    ratios = {}
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose(overrides(model, args.method, args.steps, args.batch, args.samples))
            t0 = time.perf_counter()
            out = train_and_evaluate(cfg, Path(tmp, "vm"))
            vm = time.perf_counter() - t0
            t0 = time.perf_counter()
            seq_acc = {}
            for name in out["runs"]:
                lane = rundir.load_config(Path(tmp, "vm", name))
                seq_acc[name] = train_and_evaluate(lane, Path(tmp, "seq", name))[
                    "target/test/accuracy"]
            seq = time.perf_counter() - t0
        gap = max(abs(out["runs"][n]["target/test/accuracy"] - a) for n, a in seq_acc.items())
        ratios[model] = seq / vm
        print(f"{model:9s} sequential: {seq:7.1f} s   vmapped: {vm:7.1f} s   (largest -90% "
              f"accuracy gap between a lane and its separate run: {100 * gap:.2f} points)")
    for model, r in ratios.items():
        print(f"ratio sequential/vmapped {model}: {r:.2f}x")


if __name__ == "__main__":
    main()
