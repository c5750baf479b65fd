"""One MiniLM (all-MiniLM-L6-v2) fine-tuning step, jtl vs PyTorch `transformers`, same data.

    .venv/bin/python benchmarks/minilm_step.py [--batch 32 --length 128 --steps 10 --threads 1]
    .venv/bin/python benchmarks/minilm_step.py --quick      # batch 8, length 32, 3 steps

The step: mean-pooled MiniLM features -> a new 2-way linear head, cross-entropy, AdamW
(lr 2e-5), every parameter trained; random token ids (lengths drawn in [length/2, length],
right padding). jtl's side is jit-compiled (`jtl.models.bert` as the trainer builds it, no
dropout); the PyTorch side (`--torch`, run by this driver as a subprocess in the torch venv,
`--torch-python`, default /tmp/torchenv/bin/python) is BertModel in train mode with its
dropout off too (eval-mode modules, gradients on), so both do the same arithmetic. Threads:
`--threads` for both (XLA's intra-op pool and torch.set_num_threads); on a GPU machine
both sides run on the GPU. Prints steps/s of each
and the ratio jtl / torch. Compilation (jtl) and the first step (both) are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def batch(args: argparse.Namespace):
    import numpy as np

    rng = np.random.default_rng(0)
    lengths = rng.integers(args.length // 2, args.length + 1, args.batch)
    ids = rng.integers(1000, 30000, (args.batch, args.length))
    mask = (np.arange(args.length)[None] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask > 0, ids, 0)
    ids[:, 0] = 101
    return ids, mask, rng.integers(0, 2, args.batch)


def run_jtl(args: argparse.Namespace) -> float:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from jtl.methods import METHODS
    from jtl.models import build_network
    from jtl.models.pretrained import load

    cfg = {"name": "bert", "input_shape": [args.length], "weights": args.model}
    net = build_network(cfg, 2, METHODS.get("source_only")(), seed=0)
    graphdef, params = nnx.split(net)
    params, _ = load(params.to_pure_dict(), args.model, type(net.backbone))
    tx = optax.adamw(2e-5, weight_decay=0.01)
    opt = tx.init(params)
    ids, mask, y = batch(args)
    x = {"tokens": jnp.asarray(ids, jnp.int32), "mask": jnp.asarray(mask, jnp.int32)}
    y = jnp.asarray(y)

    @jax.jit
    def step(params, opt, x, y):
        def loss(p):
            logits = nnx.merge(graphdef, p)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, value

    params, opt, v = step(params, opt, x, y)
    jax.block_until_ready(v)
    t = time.perf_counter()
    for _ in range(args.steps):
        params, opt, v = step(params, opt, x, y)
    jax.block_until_ready(v)
    return args.steps / (time.perf_counter() - t)


def run_torch(args: argparse.Namespace) -> float:
    import importlib.util

    import torch

    find = importlib.util.find_spec  # a torchvision not matching torch breaks transformers
    importlib.util.find_spec = lambda n, *a: None if n.split(".")[0] == "torchvision" else find(
        n, *a)
    from transformers import BertModel

    torch.set_num_threads(args.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"  # jax's side is on its default device
    model = BertModel.from_pretrained(args.model, add_pooling_layer=False).eval().to(dev)
    head = torch.nn.Linear(model.config.hidden_size, 2).to(dev)  # eval(): no dropout
    params = [*model.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01)
    ids, mask, y = (torch.from_numpy(a).to(dev) for a in batch(args))

    def step():
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask[..., None].to(h.dtype)
        f = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        loss = torch.nn.functional.cross_entropy(head(f), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    step()
    sync()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    return args.steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="batch 8, length 32, 3 steps")
    p.add_argument("--model", default=None, help="MiniLM folder (default: jtl's model cache)")
    p.add_argument("--torch", action="store_true", help="run the PyTorch side only (JSON)")
    p.add_argument("--torch-python", default="/tmp/torchenv/bin/python")
    args = p.parse_args()
    if args.quick:
        args.batch, args.length, args.steps = 8, 32, 3
    if args.torch:
        print(json.dumps({"torch_steps_per_s": run_torch(args)}))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}"
                        f" intra_op_parallelism_threads={args.threads}"}
    os.environ.update({"XLA_FLAGS": env["XLA_FLAGS"]})  # before jax is imported
    if args.model is None:
        from jtl.models.bert.fetch import model_dir
        args.model = str(model_dir())
    jtl_rate = run_jtl(args)
    cmd = [args.torch_python, str(Path(__file__).resolve()), "--torch", "--batch",
           str(args.batch), "--length", str(args.length), "--steps", str(args.steps),
           "--threads", str(args.threads), "--model", args.model]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"the PyTorch side failed ({args.torch_python}): {out.stderr.strip()[-400:]}")
    torch_rate = json.loads(out.stdout.strip().splitlines()[-1])["torch_steps_per_s"]
    print(json.dumps({"batch": args.batch, "length": args.length, "threads": args.threads,
                      "jtl_steps_per_s": round(jtl_rate, 4),
                      "torch_steps_per_s": round(torch_rate, 4),
                      "ratio_jtl_over_torch": round(jtl_rate / torch_rate, 3)}))


if __name__ == "__main__":
    main()
