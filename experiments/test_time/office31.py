"""Source-free SHOT and TENT on Office-31's six tasks (issue 25), from the source-only runs of
experiments/office31's DA table (frozen ImageNet EfficientNet-Lite0, TLlib's bottleneck and
head, cached 1280-d features), in one process; then the table, each adapted run paired with
the source model it started from on the same target split (the whole target domain, as
Office-31 is scored).

    office31.py run [--da DIR] [--out DIR] [--methods shot,tent] [--tasks A2W,W2D]
    office31.py table [--da DIR] [--out DIR]

A run reads only the unlabeled target (source=null), loads the source run's neck and head
(`init_from`, `dont_load='backbone/.*'`: the backbone stays model.weights' own, so its
cached features are the ones the source run trained on) and adapts the bottleneck:
- shot (SHOT's office code, image_target.py): head frozen, IM + 0.3 x CE to centroid
  pseudo-labels recomputed once an epoch, SGD 0.9 Nesterov lr 0.01, weight decay 5e-4,
  batch 64, 15 epochs of the target domain;
- tent (TENT's conf.py, as in the MNIST-C study): entropy, the bottleneck's BatchNorm scale
  and shift only, Adam lr 1e-3, batch 128, one pass (offline: the trainer's online stream
  does not read cached features).
Completed runs are not retrained.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from jtl import rundir
from jtl.errors import JtlError
from jtl.measures.stats import mean_ci
from jtl.train.trainer import train_and_evaluate
from tests.conftest import CONF

DOMAINS = {"A": "amazon", "D": "dslr", "W": "webcam"}
SIZES = {"amazon": 2817, "dslr": 498, "webcam": 795}  # the whole domain is target train
TASKS = ("A2W", "D2W", "W2D", "A2D", "D2A", "W2A")
SEEDS = (0, 1, 2)
CPU = ["model.input_shape=[128,128,3]", "pp.resize=146"]  # the DA table's CPU protocol
KEY = "target/test/accuracy"  # the final step: a source-free run has no labeled val split


def method_overrides(method: str, target: str) -> tuple[list[str], int]:
    """(the method's overrides, its steps) on `target`'s whole domain."""
    n = SIZES[target]
    if method == "shot":
        epoch = math.ceil(n / 64)
        return ["method=shot", "method.beta=0.3", "trainer.batch_size=64",
                "optim.weight_decay=5e-4", f"method.interval={epoch}"], 15 * epoch
    if method == "tent":
        return ["method=tent", "optim=adam", "optim.lr=1e-3",
                "trainer.batch_size=128"], math.ceil(n / 128)
    raise JtlError(f"method {method!r}: shot or tent")


def jobs(args: argparse.Namespace):
    for task in args.tasks:
        s, t = DOMAINS[task[0]], DOMAINS[task[2]]
        for m in args.methods:
            extra, steps = method_overrides(m, t)
            for seed in SEEDS:
                src = args.da / task / "source_only" / f"seed{seed}"
                yield src, args.out / task / m / f"seed{seed}", [
                    "experiment=office31_da", f"domain@source=office31_{s}",
                    f"domain@target=office31_{t}", "source=null", f"init_from={src.resolve()}",
                    "dont_load=backbone/.*", f"seed={seed}", *CPU, *extra,
                    f"trainer.steps={steps}", f"trainer.eval_every={steps}",
                    f"trainer.log_every={steps}", f"trainer.checkpoint_every={steps}",
                    "trainer.progress=false",
                    "trainer.tensorboard=false"]


def run(args: argparse.Namespace) -> None:
    failed = []
    for src, out, overrides in jobs(args):
        if rundir.is_completed(out):
            continue
        if not rundir.is_completed(src):
            failed.append(f"{out}: its source run {src} is not completed (run_da.sh first)")
            continue
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        t0 = time.time()
        try:
            s = train_and_evaluate(cfg, out, overrides=overrides)
            print(f"{out}: {100 * s[KEY]:.1f} ({time.time() - t0:.0f} s)", flush=True)
        except JtlError as e:
            failed.append(f"{out}: {e}")
    if failed:
        sys.exit("\n".join(failed))


def read(path: Path, key: str = KEY) -> float | None:
    f = path / "summary.json"
    if not f.exists():
        return None
    s = json.loads(f.read_text())
    return 100 * s[key] if s.get("status") == "completed" and key in s else None


def table(args: argparse.Namespace) -> str:
    """Per task and on the six-task average: the source model (its final step, the one the
    adapted runs load), each method, and the paired difference with its 95% t interval."""
    lines = ["| task | source model | " + " | ".join(
        f"{m} | {m} - source [95% CI]" for m in args.methods) + " |",
        "|---" * (2 + 2 * len(args.methods)) + "|"]
    per_seed: dict[str, list[list[float]]] = {m: [[] for _ in SEEDS] for m in args.methods}
    src_seed: list[list[float]] = [[] for _ in SEEDS]
    complete = {m: True for m in args.methods}
    for task in args.tasks:
        src = [read(args.da / task / "source_only" / f"seed{s}") for s in SEEDS]
        row = [task.replace("2", "->"), fmt(src)]
        for m in args.methods:
            got = [read(args.out / task / m / f"seed{s}") for s in SEEDS]
            if None in got or None in src:
                complete[m] = False
                row += ["", ""]
                continue
            diff = [g - b for g, b in zip(got, src, strict=True)]
            row += [fmt(got), ci(diff)]
            for i, (g, b) in enumerate(zip(got, src, strict=True)):
                per_seed[m][i].append(g)
                if m == args.methods[0]:
                    src_seed[i].append(b)
        lines.append("| " + " | ".join(row) + " |")
    avg = ["**average**", ""]
    for m in args.methods:
        if not complete[m]:
            avg += ["(incomplete)", ""]
            continue
        a = [sum(v) / len(v) for v in per_seed[m]]
        b = [sum(v) / len(v) for v in src_seed]
        avg[1] = fmt(b)
        avg += [fmt(a), ci([x - y for x, y in zip(a, b, strict=True)])]
    lines.append("| " + " | ".join(avg) + " |")
    return "\n".join(lines)


def fmt(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None]
    return f"{sum(vals) / len(vals):.1f}" if len(vals) == len(values) and vals else ""


def ci(diff: list[float]) -> str:
    m, lo, hi = mean_ci(diff)
    return f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("run", "table"))
    ap.add_argument("--da", type=Path, default=Path("experiments/office31/runs/da"))
    ap.add_argument("--out", type=Path, default=Path("experiments/test_time/runs_office31"))
    ap.add_argument("--methods", type=lambda v: v.split(","), default=["shot", "tent"])
    ap.add_argument("--tasks", type=lambda v: v.split(","), default=list(TASKS))
    args = ap.parse_args()
    if args.what == "run":
        run(args)
    print(table(args))


if __name__ == "__main__":
    main()
