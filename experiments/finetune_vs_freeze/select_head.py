"""Choose the third new-classes design's prototype head on held-out *source* classes.

    .venv/bin/python experiments/finetune_vs_freeze/select_head.py

Meta-validation in the sense of Ravi & Larochelle (2017): the source's own classes (MNIST
digits 0-4) are split into base and validation classes, so the head is chosen without any
image of the target classes (digits 5-9) or of USPS. Fold f = 0..4 holds out digits
{f, f+1 mod 5}, trains a LeNet source model on the other three exactly as the study trains its
source models (`experiment=ft_pretrain_lenet04`, seed f), and scores every candidate head by
2-way 1-shot nearest-class-mean accuracy on the held-out digits' MNIST train images: 1000
support draws per fold, each scored on a fixed sample of 1000 other images per class.

Candidates (README, third design): layer in {features (the 500-d backbone output), conv2
(`backbone/blocks/1`, 800-d)} x metric in {euclidean, cosine, cl2n with the source train mean,
cl2n with the support mean}. The winner is the highest mean over folds; within 0.2 points of
it, the earlier candidate in CANDIDATES wins. Writes runs/select/selection.json and prints the
table that the README copies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNS = HERE / "runs" / "select"
FOLDS = range(5)
EPISODES = 1000
QUERIES_PER_CLASS = 1000
TIE = 0.002
CANDIDATES = [(layer, metric, center)
              for layer in ("features", "backbone/blocks/1")
              for metric, center in (("euclidean", None), ("cosine", None), ("cl2n", "source"),
                                     ("cl2n", "support"))]


def name(candidate: tuple) -> str:
    layer, metric, center = candidate
    return f"{'conv2' if layer != 'features' else 'output'}/{metric}" + (
        f"-{center}" if center else "")


def fold_classes(f: int) -> tuple[list[int], list[int]]:
    held = sorted({f, (f + 1) % 5})
    return [c for c in range(5) if c not in held], held


def fold_run(f: int) -> Path:
    """The fold's source model, trained once (a completed run is reused)."""
    from jtl.rundir import is_completed
    from jtl.train import train_and_evaluate
    from jtl.transfer.pretrain import compose

    base, _ = fold_classes(f)
    run_dir = RUNS / f"fold{f}"
    if not is_completed(run_dir):
        overrides = ["experiment=ft_pretrain_lenet04", f"source.classes={base}",
                     f"target.classes={base}", f"seed={f}"]
        print(f"python -m jtl.train {' '.join(overrides)} hydra.run.dir={run_dir}", flush=True)
        s = train_and_evaluate(compose(overrides), run_dir)
        print(f"    base-class test accuracy {s['target/test/accuracy']:.4f}", flush=True)
    return run_dir


def accuracy(feats: np.ndarray, y: np.ndarray, support: np.ndarray, queries: np.ndarray,
             metric: str, center: np.ndarray | None) -> float:
    from jtl.models.base import prototype_head

    head = prototype_head(jnp.asarray(feats[support]), jnp.asarray(y[support]), 2, metric,
                          None if center is None else jnp.asarray(center))
    logits = feats[queries] @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
    return float(np.mean(logits.argmax(1) == y[queries]))


def score_fold(f: int) -> dict[str, float]:
    from jtl.train.build import load_domains
    from jtl.train.runs import features, load_run

    run = load_run(fold_run(f))
    _, held = fold_classes(f)
    cfg = {**run.cfg, **{role: {**run.cfg[role], "classes": held}
                         for role in ("source", "target")}}
    _, target = load_domains(cfg)
    x, y = target.train.x, np.asarray(target.train.y)  # held-out digits, relabelled 0/1
    rng = np.random.default_rng(f)
    pools = [np.flatnonzero(y == c) for c in (0, 1)]
    episodes = []  # (support, queries), the same for every candidate
    for _ in range(EPISODES):
        support = np.array([rng.choice(p) for p in pools])
        episodes.append((support, np.concatenate([
            rng.choice(np.setdiff1d(p, support), QUERIES_PER_CLASS, replace=False)
            for p in pools])))
    scores = {}
    for layer in {c[0] for c in CANDIDATES}:
        feats = features(run.model, x, layer)
        src_center = features(run.model, run.source.train.x, layer).mean(0)
        for cand in (c for c in CANDIDATES if c[0] == layer):
            _, metric, center_of = cand
            scores[name(cand)] = float(np.mean([accuracy(
                feats, y, support, queries, metric,
                src_center if center_of == "source" else
                feats[support].mean(0) if center_of == "support" else None)
                for support, queries in episodes]))
    return scores


def select(means: dict[str, float]) -> str:
    """The design's rule: the highest mean; within TIE of it, the earliest candidate."""
    best = max(means.values())
    return next(name(c) for c in CANDIDATES if means[name(c)] >= best - TIE)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    per_fold = [score_fold(f) for f in FOLDS]
    means = {name(c): float(np.mean([s[name(c)] for s in per_fold])) for c in CANDIDATES}
    winner = select(means)
    print("| head | " + " | ".join(f"fold {f} (held {fold_classes(f)[1]})" for f in FOLDS) +
          " | mean |")
    print("|---" * (len(FOLDS) + 2) + "|")
    for c in CANDIDATES:
        n = name(c)
        print(f"| {n} | " + " | ".join(f"{100 * s[n]:.1f}" for s in per_fold) +
              f" | {100 * means[n]:.1f} |")
    print(f"selected: {winner}")
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / "selection.json").write_text(json.dumps(
        {"per_fold": per_fold, "mean": means, "selected": winner}, indent=1) + "\n")


if __name__ == "__main__":
    main()
