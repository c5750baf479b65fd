"""experiments/finetune_vs_freeze: the study's grid, resumable (completed runs are skipped).

    .venv/bin/python experiments/finetune_vs_freeze/run.py [--only GRID] [--dry]

GRID: curves, new_classes (the MLP design), new_classes_lenet (the second design: LeNet source,
10 episodes whose seed also draws the support set), new_classes_select (the third: 30 fresh
episodes, the head chosen by select_head.py; README).

Every run is `jtl.train.train_and_evaluate` of a config composed from `conf/` exactly as
`python -m jtl.train <overrides>` would (the overrides are printed), into
`runs/<grid>/<direction>/<arm>/k<k>/seed<s>`; pretraining runs are found or trained once per
source and seed in `runs/pretrain` (the `pretrain=` cache). Then `layers.py` adds the
conv-layer prototypes of every LeNet episode (second and third design), and `table.py` writes
the tables and plots.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNS = HERE / "runs"
SEEDS = (0, 1, 2)
KS = ("1", "5", "10", "50", "all")
# Direction -> (experiment, pretraining experiment).
DIRECTIONS = {"usps_to_mnist": ("ft_u2m", "ft_pretrain_usps"),
              "mnist_to_usps": ("ft_m2u", "ft_pretrain_mnist")}
# Arm -> overrides beside experiment, k and seed; {pre} is the direction's pretraining run.
ARMS = {
    "target_only": [],
    "linear_probe": ["transfer=linear_probe", "pretrain={pre}"],
    "feature_extractor": ["transfer=feature_extractor", "pretrain={pre}"],
    "freeze_k": ["transfer=freeze_k", "pretrain={pre}"],
    "finetune": ["transfer=finetune", "pretrain={pre}"],
    "lp_ft": ["transfer=lp_ft", "pretrain={pre}"],
    "discriminative": ["transfer=discriminative", "pretrain={pre}"],
    "l2_sp": ["transfer=l2_sp", "pretrain={pre}"],
    "bss": ["transfer=finetune", "method=bss", "pretrain={pre}"],
    "multitask": ["method=multitask"],
}
# Arms run at every k; the rest (the cut, README) at k in CORE_KS only.
CORE_ARMS = ("target_only", "finetune", "feature_extractor", "linear_probe", "lp_ft")
CORE_KS = ("1", "10")
# One-shot on new classes: MNIST 0-4 -> MNIST 5-9 and -> USPS 5-9.
NEW_CLASSES = {"mnist04_to_mnist59": ["experiment=ft_new_classes"],
               "mnist04_to_usps59": ["experiment=ft_new_classes", "domain@target=usps"]}
NEW_ARMS = {"target_only": [],
            "linear_probe": ["transfer=linear_probe", "pretrain=ft_pretrain_mnist04"],
            "finetune": ["transfer=finetune", "pretrain=ft_pretrain_mnist04"],
            "prototype": ["transfer=prototype", "pretrain=ft_pretrain_mnist04"],
            # added after the Euclidean prototype's result was seen (README)
            "prototype_cosine": ["transfer=prototype_cosine", "pretrain=ft_pretrain_mnist04"]}
NEW_KS = ("1", "5")
# The second new-classes design (README), fixed before its runs: a LeNet source, 10 episodes;
# episode e is seed e and draws its own support set (target.split_seed=e) and source model.
EPISODES = tuple(range(10))
LENET_DIRECTIONS = {"mnist04_to_mnist59": ["experiment=ft_new_classes_lenet"],
                    "mnist04_to_usps59": ["experiment=ft_new_classes_lenet",
                                          "domain@target=usps"]}
LENET_PRE = "pretrain=ft_pretrain_lenet04"
LENET_ARMS = {"target_only": [],
              # nothing is trained: one step of an all-frozen optimizer changes no parameter
              "prototype": ["transfer=prototype", LENET_PRE, "trainer.steps=1"],
              "finetune": ["transfer=finetune", LENET_PRE],
              "linear_probe": ["transfer=linear_probe", LENET_PRE]}
# Run order: the goal's arms at every k and episode first, then the others.
LENET_PHASES = (("target_only", "prototype"), ("finetune", "linear_probe"))
# The third design (README), fixed before its runs: 30 fresh episodes, k = 1 for all of them
# first; its selected head (select_head.py: conv2, cosine) is scored by layers.py from each
# `prototype` run's backbone and support set.
SELECT_EPISODES = tuple(range(100, 130))
SELECT_ARMS = ("target_only", "prototype")


def curves() -> list[tuple[Path, list[str]]]:
    jobs = []
    for seed in SEEDS:  # seed-major: a partial study still has paired seeds
        for k in KS:
            for direction, (exp, pre) in DIRECTIONS.items():
                for arm, extra in ARMS.items():
                    if arm not in CORE_ARMS and k not in CORE_KS:
                        continue
                    overrides = [f"experiment={exp}", f"target.per_class={k}", f"seed={seed}",
                                 *(o.format(pre=pre) for o in extra)]
                    jobs.append((RUNS / "curves" / direction / arm / f"k{k}" / f"seed{seed}",
                                 overrides))
    return jobs


def new_classes() -> list[tuple[Path, list[str]]]:
    jobs = []
    for seed in SEEDS:
        for k in NEW_KS:
            for direction, base in NEW_CLASSES.items():
                for arm, extra in NEW_ARMS.items():
                    overrides = [*base, f"target.per_class={k}", f"seed={seed}", *extra]
                    jobs.append((RUNS / "new_classes" / direction / arm / f"k{k}" /
                                 f"seed{seed}", overrides))
    return jobs


def episode_jobs(grid: str, episodes: tuple[int, ...],
                 blocks: list[tuple[tuple[str, ...], str]]) -> list[tuple[Path, list[str]]]:
    """The LeNet designs' runs: for each (arms, k) block in order, every episode (its seed also
    draws the support set) of both targets."""
    jobs = []
    for arms, k in blocks:
        for seed in episodes:
            for direction, base in LENET_DIRECTIONS.items():
                for arm in arms:
                    overrides = [*base, f"target.per_class={k}", f"seed={seed}",
                                 f"target.split_seed={seed}", *LENET_ARMS[arm]]
                    jobs.append((RUNS / grid / direction / arm / f"k{k}" / f"seed{seed}",
                                 overrides))
    return jobs


def new_classes_lenet() -> list[tuple[Path, list[str]]]:
    return episode_jobs("new_classes_lenet", EPISODES,
                        [(phase, k) for phase in LENET_PHASES for k in NEW_KS])


def new_classes_select() -> list[tuple[Path, list[str]]]:
    return episode_jobs("new_classes_select", SELECT_EPISODES,
                        [(SELECT_ARMS, k) for k in NEW_KS])


GRIDS = {"new_classes": new_classes, "new_classes_lenet": new_classes_lenet,
         "new_classes_select": new_classes_select, "curves": curves}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=list(GRIDS))
    ap.add_argument("--dry", action="store_true", help="print the jobs, train nothing")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from jtl.rundir import is_completed
    from jtl.train import train_and_evaluate
    from jtl.transfer.pretrain import compose

    logging.basicConfig(level=logging.WARNING)
    for noisy in ("absl", "jax"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    jobs = [job for name, grid in GRIDS.items() if args.only in (None, name) for job in grid()]
    paths = [f"paths.pretrain_dir={RUNS / 'pretrain'}"]
    todo = [(d, o) for d, o in jobs if not is_completed(d)]
    print(f"{len(jobs)} runs, {len(jobs) - len(todo)} completed, {len(todo)} to train",
          flush=True)
    t0 = time.time()
    for i, (run_dir, overrides) in enumerate(todo):
        print(f"[{i + 1}/{len(todo)} {time.time() - t0:.0f}s] python -m jtl.train "
              f"{' '.join(overrides)} hydra.run.dir={run_dir.relative_to(ROOT)}", flush=True)
        if args.dry:
            continue
        cfg = compose([*overrides, *paths])
        s = train_and_evaluate(cfg, run_dir)
        print(f"    target/test/accuracy {s['target/test/accuracy']:.4f} "
              f"({s['wall_time_s']:.1f}s)", flush=True)
    if not args.dry:
        sys.path.insert(0, str(HERE))
        import layers
        import table

        layers.main(RUNS / "new_classes_lenet")
        layers.main(RUNS / "new_classes_select", layers.SELECTED)
        table.main(RUNS)


if __name__ == "__main__":
    main()
