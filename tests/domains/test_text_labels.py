"""Transductive methods on a text domain never read its labels: the target's labels shuffled,
DANN on bag-of-words features (text_features=bow) trains to bit-identical parameters; the
check can fail (target_only reads them)."""

from __future__ import annotations

import numpy as np
import pytest

from jtl.train import train_and_evaluate
from tests.train.test_trainer import assert_trees, final_params

GOOD = ["great", "excellent", "loved", "wonderful", "superb"]
BAD = ["awful", "boring", "hated", "terrible", "waste"]


def _csv(path, seed: int, shuffle: bool) -> str:
    """Short synthetic reviews: two sentiment words and filler, label 1 for GOOD."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 120)
    rows = [" ".join([*rng.choice(GOOD if yi else BAD, 2), *rng.choice(["the", "a", "dvd",
                                                                       "book", "it"], 3)])
            for yi in y]
    if shuffle:
        y = np.random.default_rng(7).permutation(y)
    path.write_text("text,label\n" + "".join(f"{r},{yi}\n" for r, yi in zip(rows, y,
                                                                             strict=True)))
    return str(path)


def _run(fast_cfg, tmp_path, method: str, shuffle: bool):
    src = _csv(tmp_path / "src.csv", 0, False)
    tgt = _csv(tmp_path / f"tgt{shuffle}.csv", 1, shuffle)
    cfg = fast_cfg(f"method={method}", "domain@source=text", f"source.path={src}",
                   "domain@target=text", f"target.path={tgt}", "text_features=bow",
                   "text_features.top_k=40", "model=dann_shallow", "trainer.steps=8",
                   "trainer.batch_size=16", "trainer.eval_every=8", "trainer.log_every=4",
                   "trainer.checkpoint_every=8")
    run_dir = tmp_path / f"{method}{shuffle}"
    summary = train_and_evaluate(cfg, run_dir)
    assert summary["status"] == "completed"
    return final_params(run_dir)


def test_dann_on_text_never_reads_target_labels(fast_cfg, tmp_path):
    assert_trees(_run(fast_cfg, tmp_path, "dann", False), _run(fast_cfg, tmp_path, "dann", True))


@pytest.mark.slow
def test_the_label_check_can_fail_on_text(fast_cfg, tmp_path):
    with pytest.raises(AssertionError):
        assert_trees(_run(fast_cfg, tmp_path, "target_only", False),
                     _run(fast_cfg, tmp_path, "target_only", True))
