"""Zero-shot accuracy of a `dap` run: classes it never trained on, recognised by attributes.

The run's attribute predictor scores images of the *unseen* classes (every row of its
attribute table outside `seen`, or `unseen`) of a domain: the run's target domain, or another
one by name (`domain=usps`: seen on MNIST, unseen on USPS). Each image is assigned the unseen
class whose code fits its predicted attributes best (`jtl.methods.dap.dap_predict`). The
balanced accuracy (mean per-class recall) is the number to hold against chance, 1 / (number
of unseen classes); the plain accuracy is reported beside it with the majority class's share,
its chance level when the classes differ in size. Beside it, the same rule among the seen classes on
that domain's seen-class images (`zero_shot_seen_accuracy`, chance 1 / number seen): how good
the attribute predictor is where it was trained. Labels are only used to score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jtl.errors import JtlError
from jtl.measures.base import MEASURES, MeasureContext, MeasureValues


def zero_shot_accuracy(attr_logits: np.ndarray, labels: np.ndarray,
                       codes: np.ndarray) -> tuple[float, float]:
    """(accuracy, balanced accuracy) of DAP among `codes` (K, M): an image is right when its
    nearest code is row `labels[i]`. Balanced: the mean of the per-class recalls, whose chance
    level is 1/K whatever the class sizes (USPS has 359 zeros and 147 sevens)."""
    import jax.numpy as jnp

    from jtl.methods.dap import dap_predict

    pred = np.asarray(dap_predict(jnp.asarray(attr_logits), jnp.asarray(codes, jnp.float32)))
    labels = np.asarray(labels)
    right = pred == labels
    recalls = [right[labels == k].mean() for k in range(len(codes)) if (labels == k).any()]
    return float(right.mean()), float(np.mean(recalls))


def _domain_cfg(run_cfg: dict, domain: str | None, classes: Sequence[int]) -> dict[str, Any]:
    """The run's target domain config, or `conf/domain/<domain>.yaml`, on `classes` only."""
    from jtl.config import compose

    cfg = dict(run_cfg["target"]) if domain is None else compose(
        [f"domain@target={domain}"])["target"]
    return {**cfg, "classes": list(classes), "per_class": None, "max_train": None}


@MEASURES.register("zero_shot")
def zero_shot(ctx: MeasureContext, domain: str | None = None,
              unseen: Sequence[int] | None = None, split: str = "test") -> MeasureValues:
    """Unseen- and seen-class DAP accuracy of the measured `dap` run on `domain`'s `split`."""
    from jtl.domains import build_domain
    from jtl.domains.base import load_context
    from jtl.methods.dap import DAP
    from jtl.train.runs import features, load_run

    (run_dir,) = ctx.need("zero_shot", "run_dir")
    run = load_run(run_dir)
    if not isinstance(run.method, DAP):
        raise JtlError(f"measure 'zero_shot' needs a run of method=dap; {run_dir} ran "
                       f"'{run.cfg['method']['name']}'")
    codes, seen = run.method.codes, run.method.seen_classes
    unseen = [int(c) for c in unseen] if unseen is not None else [
        c for c in range(len(codes)) if c not in seen]
    if len(unseen) < 2 or set(unseen) & set(seen):
        raise JtlError(f"zero_shot: unseen classes {unseen} must be >= 2 classes outside the "
                       f"seen ones {seen}; pass measure.zero_shot.unseen=[...]")
    shape = tuple(run.cfg["model"]["input_shape"])
    ctx_load = load_context(run.cfg.get("paths") or {})
    out: MeasureValues = {"zero_shot_domain": domain or run.cfg["target"]["name"]}
    for part, classes in (("unseen", unseen), ("seen", seen)):
        data = getattr(build_domain(_domain_cfg(run.cfg, domain, classes), shape, ctx_load,
                                    role="target"), split)
        logits = np.asarray(run.model.attr(features(run.model, data.x)))
        acc, balanced = zero_shot_accuracy(logits, data.y, codes[classes])
        out[f"zero_shot_{part}_accuracy"] = acc
        out[f"zero_shot_{part}_balanced_accuracy"] = balanced
        out[f"zero_shot_{part}_chance"] = 1.0 / len(classes)  # of the balanced accuracy
        out[f"zero_shot_{part}_majority"] = float(np.bincount(data.y).max() / len(data.y))
        out[f"zero_shot_{part}_n"] = len(data)
    return out
