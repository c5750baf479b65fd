"""The prototype head on an earlier layer, beside the backbone output's.

    .venv/bin/python experiments/finetune_vs_freeze/layers.py [RUNS/new_classes_lenet]
    .venv/bin/python experiments/finetune_vs_freeze/layers.py RUNS/new_classes_select selected

For every completed `prototype` run of a LeNet new-classes design (README), a
nearest-class-mean head (`jtl.models.base.prototype_head`) on the second conv block's output
(`backbone/blocks/1`, flattened) of the same loaded source backbone and the same support set,
scored on the whole target test split: Euclidean (`prototype_conv2`, the second design) or
cosine (`prototype_selected`, the third design's head chosen by `select_head.py`). Nothing is
trained, so no trainer run is needed; each result is written to
`<dir>/<arm>/k<k>/seed<s>/prototype.json`, which `table.py` reads as an arm. As a check, the
head on the backbone output must reproduce the run's own recorded accuracy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jtl.models.base import prototype_head
from jtl.rundir import atomic_write_text, read_summary
from jtl.train.runs import Run, features, load_run

HERE = Path(__file__).resolve().parent
METRIC = "target/test/accuracy"
LAYER = "backbone/blocks/1"  # LeNet: the second conv block, 4x4x50 after pooling and ReLU
RESULT = "prototype.json"
# arm -> (layer, metric), per design
SECOND = {"prototype_conv2": (LAYER, "euclidean")}
SELECTED = {"prototype_selected": (LAYER, "cosine")}


def layer_prototype_accuracy(run: Run, layer: str, metric: str = "euclidean") -> float:
    """Target test accuracy of the nearest-class-mean head of the target train (support) set
    on `layer`'s features under the run's backbone."""
    train, test, n = run.target.train, run.target.test, run.target.num_classes
    head = prototype_head(jnp.asarray(features(run.model, train.x, layer)),
                          jnp.asarray(train.y), n, metric)
    logits = features(run.model, test.x, layer) @ np.asarray(head["kernel"]) + np.asarray(
        head["bias"])
    return float(np.mean(logits.argmax(1) == test.y))


def score(run_dir: Path, layer: str = LAYER, metric: str = "euclidean",
          tol: float = 1e-3) -> dict:
    """The layer prototype's result for one completed `prototype` run (checked against it)."""
    run = load_run(run_dir)
    recorded = float(read_summary(run_dir)[METRIC])
    again = layer_prototype_accuracy(run, "features")
    if abs(again - recorded) > tol:
        raise RuntimeError(f"{run_dir}: the backbone-output prototype gives {again:.4f} here "
                           f"but the run recorded {recorded:.4f}; the layer result would not "
                           "be comparable")
    return {"status": "completed", "seed": int(run.cfg["seed"]), "layer": layer,
            "metric": metric, METRIC: layer_prototype_accuracy(run, layer, metric),
            "from_run": str(run_dir),
            "backbone_output_accuracy": recorded}


def main(root: Path | None = None, arms: dict[str, tuple[str, str]] | None = None) -> None:
    if root is None:  # the command line
        root = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs" / "new_classes_lenet"
        arms = arms or (SELECTED if sys.argv[2:] == ["selected"] else SECOND)
    arms = arms or SECOND
    for summary in sorted(root.glob("*/prototype/k*/seed*/summary.json")):
        run_dir = summary.parent
        if (read_summary(run_dir) or {}).get("status") != "completed":
            continue
        for arm, (layer, metric) in arms.items():
            out = root / run_dir.parts[-4] / arm / run_dir.parts[-2] / run_dir.parts[-1] / \
                RESULT
            if out.exists():
                continue
            result = score(run_dir, layer, metric)
            atomic_write_text(out, json.dumps(result, indent=1) + "\n")
            print(f"{out.relative_to(root)}: {result[METRIC]:.4f} (backbone output "
                  f"{result['backbone_output_accuracy']:.4f})", flush=True)


if __name__ == "__main__":
    main()
