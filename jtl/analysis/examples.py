"""Tiny runs the notebooks create for themselves when given no run dir (seconds on a CPU).

Scikit-learn's 8x8 digits as source and the same digits rotated by 30 degrees as target, a
two-layer MLP, 100 steps: enough for curves, confusion and negative transfer to show, not
for numbers to report. The tests build the same runs (`tests/analysis/tiny.py`), so what a
notebook opens by default is what `make test` executes it on. A completed run is never
retrained: calling these again returns at once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

DEFAULT_ROOT = Path(tempfile.gettempdir()) / "jtl-notebooks"
TINY = (
    "domain@source=sklearn_digits",
    "domain@target=sklearn_digits",
    "target.shifts=[{name:rotate,degrees:30}]",
    "model=mlp",
    "model.hidden=[64,32]",
    "optim.lr=3e-3",
    "trainer=debug",
    "trainer.steps=100",
    "trainer.eval_every=20",
    "trainer.log_every=20",
    "trainer.checkpoint_every=20",
    "trainer.keep_checkpoints=5",
    "trainer.progress=false",
    "trainer.tensorboard=false",
)
# The negative-transfer grid: target labels per class, and seeds (2: an interval, barely).
GRID_PER_CLASS = (3, 30)
GRID_SEEDS = (0, 1)
FREEZE = "backbone/blocks/0/.*"


def tiny_run(run_dir: str | Path, *overrides: str) -> Path:
    """Train (or find completed) a tiny run of `TINY` + `overrides` in `run_dir`."""
    from jtl.config import compose
    from jtl.train import train_and_evaluate

    run_dir = Path(run_dir)
    train_and_evaluate(compose([*TINY, *overrides]), run_dir)
    return run_dir


def tiny_source(root: str | Path = DEFAULT_ROOT) -> Path:
    """source_only: trained on the source digits, evaluated on the rotated ones."""
    return tiny_run(Path(root) / "source_only")


def tiny_adapted(root: str | Path = DEFAULT_ROOT) -> Path:
    """DANN on the same pair: the adapted counterpart of `tiny_source`."""
    return tiny_run(Path(root) / "dann", "method=dann")


def _finetune(source: Path, per_class: int, seed: int, *extra: str) -> list[str]:
    return ["method=target_only", f"target.per_class={per_class}", f"seed={seed}",
            "trainer.batch_over_split=resample", f"init_from={source}", *extra]


def tiny_grid(root: str | Path = DEFAULT_ROOT) -> Path:
    """`root`/grid: `tiny_source` fine-tuned (every parameter loaded) on K labeled target
    examples per class, K in GRID_PER_CLASS, seeds GRID_SEEDS, under finetune/, and the
    target_only baselines on the same labels under baselines/ (what `jtl.measure
    measure=[ntg]` would train), so `load_grid(..., per="group", ntg=True)` has every NTG."""
    source = tiny_source(root)
    grid = Path(root) / "grid"
    for k in GRID_PER_CLASS:
        for seed in GRID_SEEDS:
            tiny_run(grid / "finetune" / f"pc{k}" / f"seed{seed}", *_finetune(source, k, seed))
            tiny_run(grid / "baselines" / f"pc{k}" / f"seed{seed}", "method=target_only",
                     f"target.per_class={k}", f"seed={seed}", "trainer.batch_over_split=resample")
    return grid


def tiny_freeze(root: str | Path = DEFAULT_ROOT) -> Path:
    """`tiny_source` fine-tuned with its first block frozen (`freeze=FREEZE`)."""
    return tiny_run(Path(root) / "freeze",
                    *_finetune(tiny_source(root), GRID_PER_CLASS[-1], GRID_SEEDS[0],
                               f"freeze={FREEZE}"))


def finetuned(root: str | Path = DEFAULT_ROOT) -> dict[str, Path]:
    """The fine-tuned versions of `tiny_source` by a short name (builds what is missing)."""
    grid = tiny_grid(root)
    seed = GRID_SEEDS[0]
    return {**{f"all layers, {k}/class": grid / "finetune" / f"pc{k}" / f"seed{seed}"
               for k in GRID_PER_CLASS},
            f"block 0 frozen, {GRID_PER_CLASS[-1]}/class": tiny_freeze(root)}
