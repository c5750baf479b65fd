"""jtl's DANN and source_only training steps vs a plain PyTorch implementation of the same steps.

Same network (LeNet 20-50-500, head 500-10, DANN discriminator 500-1024-1024-1 behind a
gradient reversal layer), same batch (32 source + 32 target, drawn with replacement from
digits-sized synthetic data), same optimizer (SGD momentum 0.9 Nesterov, weight decay 1e-3,
lr 0.01 annealed as (1 + 10 p)^-0.75, set every step), same thread count. jtl runs the
trainer's compiled chunk of `steps_per_call: auto` steps (`--chunk` overrides). Both are
warmed up, then timed alternately in one process (`--rounds` rounds of `--steps` steps each);
the median steps/s of each and their ratio are printed last. Time to step 100 is measured in
fresh processes, from launch (interpreter start and imports included): jtl cold (an empty
compilation cache), jtl warm (a second process on that cache), PyTorch.

    pip install -e '.[bench]'   # PyTorch, CPU wheels: --index-url https://download.pytorch.org/whl/cpu
    python benchmarks/step_vs_pytorch.py [--methods source_only dann] [--rounds 5] [--no-startup]

Without PyTorch installed it times jtl alone and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

BATCH = 32
LR, MOMENTUM, WD, TOTAL = 0.01, 0.9, 1e-3, 2000


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------- PyTorch


class TorchStep:
    """The reference: one eager PyTorch training step per call, as a plain training loop runs
    it (no compile), on tensors already in memory."""

    def __init__(self, method: str, data: dict, threads: int, seed: int = 0) -> None:
        import torch
        from torch import nn

        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch, self.method = torch, method

        class Reverse(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, coeff):
                ctx.coeff = coeff
                return x.view_as(x)

            @staticmethod
            def backward(ctx, g):
                return -ctx.coeff * g, None

        self.reverse = Reverse.apply
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(800, 500), nn.ReLU())
        self.head = nn.Linear(500, 10)
        modules = [self.backbone, self.head]
        if method == "dann":
            self.disc = nn.Sequential(nn.Linear(500, 1024), nn.ReLU(), nn.Linear(1024, 1024),
                                      nn.ReLU(), nn.Linear(1024, 1))
            modules.append(self.disc)
        params = [p for m in modules for p in m.parameters()]
        self.opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, nesterov=True,
                                   weight_decay=WD)
        # NCHW, as PyTorch's convolutions want it.
        self.data = {dom: (torch.from_numpy(np.ascontiguousarray(a["x"].transpose(0, 3, 1, 2))),
                           torch.from_numpy(a["y"].astype(np.int64))) for dom, a in data.items()}
        self.gen = torch.Generator().manual_seed(seed)
        self.step = 0

    def _draw(self, dom: str) -> tuple[Any, Any]:
        x, y = self.data[dom]
        idx = self.torch.randint(len(x), (BATCH,), generator=self.gen)
        return x[idx], y[idx]

    def run(self, steps: int) -> float:
        torch, F = self.torch, self.torch.nn.functional
        loss = torch.zeros(())
        for _ in range(steps):
            p = min(self.step / (TOTAL - 1), 1.0)
            for group in self.opt.param_groups:
                group["lr"] = LR / (1.0 + 10.0 * p) ** 0.75
            xs, ys = self._draw("source")
            if self.method == "dann":
                xt, _ = self._draw("target")
                f = self.backbone(torch.cat([xs, xt]))
                logits = self.head(f[:BATCH])
                coeff = 2.0 / (1.0 + np.exp(-10.0 * p)) - 1.0
                d = self.disc(self.reverse(f, coeff))[:, 0]
                dom = torch.cat([torch.ones(BATCH), torch.zeros(BATCH)])
                loss = F.cross_entropy(logits, ys) + F.binary_cross_entropy_with_logits(d, dom)
            else:
                logits = self.head(self.backbone(xs))
                loss = F.cross_entropy(logits, ys)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
        return loss.item()

    def steps_per_second(self, steps: int) -> float:
        t0 = time.perf_counter()
        self.run(steps)
        return steps / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------- jtl


def jtl_chunk(method: str, data: dict, chunk: int | None, conv_impl: str) -> Any:
    from jtl_step import Chunk

    from jtl.train.trainer import steps_per_call

    # The trainer ends a chunk at every log step (the digits recipe logs every 100); LeNet's
    # im2col convolutions chunk on every backend (jtl.train.backend.runs_conv: False).
    auto = steps_per_call({"steps_per_call": "auto", "eval_every": 500}, False)
    length = chunk or min(auto, 100)
    return Chunk(method, data, conv_impl=conv_impl, batch_size=BATCH, length=length,
                 total_steps=TOTAL)


def first_steps(framework: str, method: str, threads: int, conv_impl: str) -> None:
    """Child process: train to step 100, print the time then (jtl and jax imported only here,
    so the PyTorch child does not pay for them)."""
    from jtl_step import synthetic_digits

    data = synthetic_digits()
    if framework == "torch":
        TorchStep(method, data, threads).run(100)
    else:
        from jtl.train import compile_cache

        compile_cache.enable()  # as `jtl.train` does; JTL_COMPILE_CACHE names the directory
        c = jtl_chunk(method, data, None, conv_impl)
        c.run(max(100 // c.length, 1))
    print(json.dumps({"done": time.time()}))


def time_to_step_100(framework: str, method: str, threads: int, conv_impl: str,
                     env: dict[str, str]) -> float:
    """Seconds from launching a fresh process to its step 100 (interpreter, imports, data,
    compilation and the 100 steps)."""
    launch = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", framework, "--methods", method,
         "--threads", str(threads), "--conv-impl", conv_impl],
        env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["done"] - launch


# ------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["source_only", "dann"])
    ap.add_argument("--steps", type=int, default=200, help="steps per timing")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=None, help="jtl steps per call (default auto)")
    ap.add_argument("--conv-impl", default="auto", choices=["auto", "xla", "im2col"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-startup", action="store_true", help="skip time to step 100")
    ap.add_argument("--child", choices=["jtl", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        first_steps(args.child, args.methods[0], args.threads, args.conv_impl)
        return

    import jax
    from jtl_step import synthetic_digits

    torch_ok = have_torch()
    data = synthetic_digits()
    print(f"jax {jax.__version__} on {jax.default_backend()} ({os.cpu_count()} CPUs), "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; threads {args.threads}; "
          + (f"torch {__import__('torch').__version__}" if torch_ok
             else "PyTorch not installed (pip install -e '.[bench]'): jtl alone"))
    results: dict[str, dict[str, Any]] = {}
    for method in args.methods:
        jc = jtl_chunk(method, data, args.chunk, args.conv_impl)
        tc = TorchStep(method, data, args.threads) if torch_ok else None
        jc.run(max(50 // jc.length, 2))  # compile and warm up
        if tc is not None:
            tc.run(20)
        jr, tr = [], []
        for _ in range(args.rounds):
            jr.append(jc.steps_per_second(args.steps))
            if tc is not None:
                tr.append(tc.steps_per_second(args.steps))
        res = {"jtl": statistics.median(jr), "chunk": jc.length}
        line = f"{method:12s} jtl {res['jtl']:7.1f} steps/s (steps_per_call={jc.length})"
        if tr:
            res["torch"] = statistics.median(tr)
            res["ratio"] = res["jtl"] / res["torch"]
            rounds = " ".join(f"{j / t:.2f}" for j, t in zip(jr, tr, strict=True))
            line += f"   torch {res['torch']:7.1f} steps/s   per-round ratios {rounds}"
        print(line, flush=True)
        if not args.no_startup:
            with tempfile.TemporaryDirectory() as cache:
                env = {"JTL_COMPILE_CACHE": cache}
                res["cold_s"] = time_to_step_100("jtl", method, args.threads, args.conv_impl, env)
                res["warm_s"] = time_to_step_100("jtl", method, args.threads, args.conv_impl, env)
            if torch_ok:
                res["torch_s"] = time_to_step_100("torch", method, args.threads, args.conv_impl,
                                                  {})
        results[method] = res
    print()
    for method, res in results.items():
        line = f"{method:12s} jtl {res['jtl']:7.1f} steps/s"
        if "ratio" in res:
            line += f"  torch {res['torch']:7.1f} steps/s  ratio jtl/torch {res['ratio']:.2f}x"
        print(line)
        if "cold_s" in res:
            line = (f"{'':12s} time to step 100: jtl cold {res['cold_s']:.1f} s, "
                    f"warm {res['warm_s']:.1f} s")
            if "torch_s" in res:
                line += f", torch {res['torch_s']:.1f} s"
            print(line)


if __name__ == "__main__":
    main()
