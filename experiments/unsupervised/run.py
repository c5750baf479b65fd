"""experiments/unsupervised: unsupervised transfer (clustering the target) and zero-shot digits.

    .venv/bin/python experiments/unsupervised/run.py [--dry]

1. Encoders, per direction (MNIST -> USPS, USPS -> MNIST) and seed: `simclr` and
   `autoencoder` pretrained on the unlabeled source train images, `source_only` (the
   supervised-source encoder), the random-init encoder (the simclr run's own initial
   parameters: a paired comparison) and raw pixels. Each is scored on the target test split
   by the `cluster` measure: k-means NMI / ARI, and the label-using linear-probe accuracy.
2. Zero-shot: `dap` trained on the seen digits of MNIST (and of USPS), scored by the
   `zero_shot` measure on the unseen digits {0, 7} of the same domain and of the other one.

Resumable: runs go to `runs/<...>/seed<s>` (the trainer skips completed runs and resumes
interrupted ones) and every measured row is appended to `results.jsonl`, whose rows are
skipped on a rerun. `table.py` writes results.md from it. Hyper-parameters: README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
RESULTS = HERE / "results.jsonl"
SEEDS = (0, 1, 2)
DIRECTIONS = {"m2u": ("mnist", "usps"), "u2m": ("usps", "mnist")}
# Fixed before any result (README): MLP 784-512-256, Adam 1e-3, 2000 steps of batch 256.
COMMON = ["model=mlp", "optim=adam", "trainer.steps=2000", "trainer.batch_size=256",
          "trainer.eval_every=2000", "trainer.checkpoint_every=1000", "trainer.log_every=100",
          "trainer.progress=false", "trainer.tensorboard=false"]
ENCODERS = ("simclr", "source_only", "autoencoder")  # trained; plus random_init, raw_pixels
SEEN = [1, 2, 3, 4, 5, 6, 8, 9]  # every segment seen on and off (README); unseen {0, 7}
CLUSTER = {"cluster": {"name": "cluster"}}  # conf/measure/cluster.yaml defaults

log = logging.getLogger("unsupervised")


def overrides(direction: str, method: str, seed: int) -> list[str]:
    src, tgt = DIRECTIONS[direction]
    return [f"domain@source={src}", f"domain@target={tgt}", f"method={method}",
            f"seed={seed}", *COMMON]


def dap_overrides(domain: str, seed: int) -> list[str]:
    seen = "[" + ",".join(map(str, SEEN)) + "]"
    return [f"domain@source={domain}", f"domain@target={domain}", "method=dap",
            f"source.classes={seen}", f"target.classes={seen}", f"method.seen={seen}",
            f"seed={seed}", *COMMON]


def done_keys() -> set[str]:
    if not RESULTS.exists():
        return set()
    return {json.loads(line)["key"] for line in RESULTS.read_text().splitlines() if line}


def append(row: dict[str, Any]) -> None:
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")


def train(ov: list[str], run_dir: Path) -> None:
    from jtl.config import compose
    from jtl.train import train_and_evaluate

    log.info("train %s -> %s", " ".join(ov), run_dir)
    t = time.time()
    s = train_and_evaluate(compose(ov), run_dir)
    log.info("  %s in %.0f s", s["status"], time.time() - t)


def cluster_row(features, labels, seed: int) -> dict[str, float]:
    from jtl.measures.base import MeasureContext, run_measures

    ctx = MeasureContext(target_features=features, target_labels=labels, seed=seed)
    return run_measures(ctx, CLUSTER)


def encoders(direction: str, seed: int, done: set[str], dry: bool) -> None:
    from jtl.config import compose
    from jtl.train.build import build
    from jtl.train.runs import features, load_run

    for method in ENCODERS:
        key = f"cluster/{direction}/{method}/{seed}"
        run_dir = RUNS / direction / method / f"seed{seed}"
        if key in done:
            continue
        if dry:
            print("train", " ".join(overrides(direction, method, seed)))
            continue
        train(overrides(direction, method, seed), run_dir)
        run = load_run(run_dir)
        test = run.target.test
        append({"key": key, "table": "cluster", "direction": direction, "encoder": method,
                "seed": seed, **cluster_row(features(run.model, test.x), test.y, seed)})
    # The simclr run's network before training (same seed: paired), and the pixels.
    keys = {name: f"cluster/{direction}/{name}/{seed}" for name in ("random_init", "raw_pixels")}
    if dry or all(k in done for k in keys.values()):
        return
    _, target, _, net = build(compose(overrides(direction, "simclr", seed)))
    test = target.test
    for name, key in keys.items():
        if key not in done:
            f = features(net, test.x) if name == "random_init" else test.x.reshape(len(test.x), -1)
            append({"key": key, "table": "cluster", "direction": direction, "encoder": name,
                    "seed": seed, **cluster_row(f, test.y, seed)})


def zero_shot(domain: str, seed: int, done: set[str], dry: bool) -> None:
    from jtl.measures.base import MeasureContext, run_measures

    other = {"mnist": "usps", "usps": "mnist"}[domain]
    run_dir = RUNS / "zero_shot" / domain / f"seed{seed}"
    keys = {d: f"zero_shot/{domain}/{d}/{seed}" for d in (domain, other)}
    if all(k in done for k in keys.values()):
        return
    if dry:
        print("train", " ".join(dap_overrides(domain, seed)))
        return
    train(dap_overrides(domain, seed), run_dir)
    for d, key in keys.items():
        if key not in done:
            v = run_measures(MeasureContext(run_dir=run_dir), {"zero_shot": {"domain": d}})
            append({"key": key, "table": "zero_shot", "seen_on": domain, "scored_on": d,
                    "seed": seed, **v})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="print what would be trained")
    parser.add_argument("--smoke", type=Path, help="a 20-step, one-seed check of the whole "
                        "pipeline into this folder (not the study's)")
    args = parser.parse_args()
    global RUNS, RESULTS, SEEDS
    if args.smoke:
        RUNS, RESULTS, SEEDS = args.smoke / "runs", args.smoke / "results.jsonl", (0,)
        COMMON.extend(["trainer.steps=20", "trainer.eval_every=20",
                       "trainer.checkpoint_every=20"])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s",
                        stream=sys.stdout)
    log.setLevel(logging.INFO)
    done = done_keys()
    for seed in SEEDS:  # seed-major: a partial study still has paired seeds
        for direction in DIRECTIONS:
            encoders(direction, seed, done, args.dry)
        for domain in ("mnist", "usps"):
            zero_shot(domain, seed, done, args.dry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
