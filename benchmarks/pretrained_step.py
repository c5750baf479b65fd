"""One training step of the pretrained backbones, jtl vs PyTorch: EfficientNet-Lite0 and
ResNet-50, a new 31-class head (Office-31's), forward + backward + SGD (momentum 0.9), the
backbone's BatchNorm in training mode, 224 x 224, batch 32 (`--size`, `--batch` for a quick
run), same cores and thread count for both.

The driver runs each side in its own process: jtl in this interpreter's environment (the
trainer's own `make_step`, jitted with the state donated), PyTorch in `--torch-python` (a
venv with torch and torchvision, or the efficientnet-lite-pytorch reference package: the
ones tests/fixtures/resnet/make_reference.py uses), eager, as a plain training loop runs it.
Each pins itself to the same `--threads` cores (sched_setaffinity; torch.set_num_threads),
warms up, then times `--steps` steps, `--rounds` times; the median images/s of each and the
ratio jtl / PyTorch are printed last, one line per network.

    .venv/bin/python benchmarks/pretrained_step.py                      # 224, batch 32
    .venv/bin/python benchmarks/pretrained_step.py --size 112 --batch 8 --models resnet50
    .venv/bin/python benchmarks/pretrained_step.py --dtype bfloat16     # on a GPU

`--dtype bfloat16` runs the whole step in bfloat16 on both sides (parameters and inputs
cast; a speed figure, not a training recipe). On a GPU jtl uses the device and PyTorch
`cuda` when it has one. Weights are random: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("efficientnet_lite0", "resnet50")
CLASSES, LR, MOMENTUM = 31, 0.01, 0.9


def pin(threads: int) -> None:
    """Both sides on the same first `threads` cores."""
    cores = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cores)


def time_steps(step, rounds: int, steps: int, batch: int, sync) -> list[float]:
    """images/s of each round of `steps` calls of `step()` (after `sync`)."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        out.append(steps * batch / (time.perf_counter() - t))
    return out


def run_jtl(model: str, a: argparse.Namespace) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from jtl.methods import build_method
    from jtl.models import build_network
    from jtl.train.optim import build_optimizer
    from jtl.train.step import init_state, make_step, stat_paths

    method = build_method({"name": "source_only"})
    net = build_network({"name": model, "input_shape": [a.size, a.size, 3]}, CLASSES, method,
                        seed=0)
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    dtype = jnp.bfloat16 if a.dtype == "bfloat16" else jnp.float32
    params = jax.tree.map(lambda v: v.astype(dtype), params)
    tx = build_optimizer({"name": "sgd", "lr": LR, "momentum": MOMENTUM}, params, 10**6, ".*",
                         None, fixed=stat_paths(net))
    step = jax.jit(make_step(graphdef, method, tx, 10**6), donate_argnums=0)
    x = jax.random.normal(jax.random.key(0), (a.batch, a.size, a.size, 3), dtype)
    batch = {"source": {"x": x, "y": jnp.arange(a.batch) % CLASSES}}
    key = jax.random.key(1)
    holder = {"s": init_state(params, tx)}

    def one() -> None:
        holder["s"], _ = step(holder["s"], batch, key)

    t = time.perf_counter()
    one()
    jax.block_until_ready(holder["s"])
    compile_s = time.perf_counter() - t
    for _ in range(a.warmup):
        one()
    sync = lambda: jax.block_until_ready(holder["s"])  # noqa: E731
    sync()
    rates = time_steps(one, a.rounds, a.steps, a.batch, sync)
    return {"side": "jtl", "device": str(jax.devices()[0]), "compile_s": compile_s,
            "images_per_s": rates}


def torch_model(model: str):
    import sys as _sys
    import types

    if model == "resnet50":  # torchvision's C ops are not needed; see make_reference.py
        _sys.modules.setdefault("torchvision._meta_registrations",
                                types.ModuleType("torchvision._meta_registrations"))
        import torchvision

        return torchvision.models.resnet50(num_classes=CLASSES)
    from efficientnet_lite_pytorch import EfficientNet

    # jtl's Lite has neither dropout before the head nor drop-connect: both off here too
    return EfficientNet.from_name(model.replace("_", "-"), num_classes=CLASSES,
                                  dropout_rate=0.0, drop_connect_rate=0.0)


def run_torch(model: str, a: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if a.dtype == "bfloat16" else torch.float32
    torch.manual_seed(0)
    net = torch_model(model).to(device=device, dtype=dtype).train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    x = torch.randn(a.batch, 3, a.size, a.size, device=device, dtype=dtype)
    y = torch.arange(a.batch, device=device) % CLASSES
    loss_fn = torch.nn.CrossEntropyLoss()

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x).float(), y).backward()
        opt.step()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(a.warmup + 1):
        one()
    sync()
    rates = time_steps(one, a.rounds, a.steps, a.batch, sync)
    return {"side": "torch", "device": device, "torch": torch.__version__,
            "images_per_s": rates}


def worker(a: argparse.Namespace) -> None:
    pin(a.threads)
    out = (run_jtl if a.side == "jtl" else run_torch)(a.models[0], a)
    print("RESULT " + json.dumps(out), flush=True)


def spawn(python: str, side: str, model: str, a: argparse.Namespace) -> dict | None:
    cmd = [python, __file__, "--side", side, "--models", model, "--size", str(a.size),
           "--batch", str(a.batch), "--threads", str(a.threads), "--steps", str(a.steps),
           "--rounds", str(a.rounds), "--warmup", str(a.warmup), "--dtype", a.dtype]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        print(f"{side} {model} failed:\n{p.stderr[-1500:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=min(2, len(os.sched_getaffinity(0))))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON",
                                                             "/tmp/torchenv/bin/python"))
    ap.add_argument("--side", choices=("jtl", "torch"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        return worker(a)
    print(f"size {a.size}, batch {a.batch}, {a.threads} threads, {a.dtype}, median of "
          f"{a.rounds} x {a.steps} steps")
    for model in a.models:
        res = {side: spawn(py, side, model, a)
               for side, py in (("jtl", sys.executable), ("torch", a.torch_python))}
        med = {s: statistics.median(r["images_per_s"]) for s, r in res.items() if r}
        line = (f"{model}: jtl {med.get('jtl', float('nan')):.2f} images/s"
                f" (compile {res['jtl']['compile_s']:.0f} s, {res['jtl']['device']})"
                if res["jtl"] else f"{model}: jtl failed")
        if res["torch"]:
            line += f", PyTorch {med['torch']:.2f} images/s ({res['torch']['device']})"
        if len(med) == 2:
            line += f", ratio jtl/PyTorch {med['jtl'] / med['torch']:.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
