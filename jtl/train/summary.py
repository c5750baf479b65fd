"""What `summary.json` records of a completed run, and `failed.json` of a failed one."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jtl import rundir
from jtl.models.base import param_paths
from jtl.train.build import untrained_head, weights_summary
from jtl.train.lanes import Lane
from jtl.train.selection import summary_keys
from jtl.transfer import Recipe

log = logging.getLogger("jtl")


def failure(e: BaseException, cfg: Mapping[str, Any], t0: float) -> dict[str, Any]:
    """What failed.json records of a failed run."""
    return {"error": f"{type(e).__name__}: {e}", "seed": cfg.get("seed"),
            "method": (cfg.get("method") or {}).get("name"), "wall_time_s": time.time() - t0}


def num_params(params: Any, stats: list[str]) -> int:
    """Parameters counted as a paper counts them: batch-norm statistics are state, left out."""
    return int(sum(np.size(a) for p, a in zip(param_paths(params),
                                             jax.tree_util.tree_leaves(params), strict=True)
                   if p not in stats))


def summaries(cfg: dict, prog: Any, params: Any, stats: list[str], freeze: str | None,
              recipe: Recipe, t0: float) -> list[dict | Exception]:
    """Each lane's summary (its final evaluation, every selection rule's choice, what the run
    was), or the exception that ended that lane alone."""
    method, roles = prog.method, prog.roles
    labeled = "target" if "target/y" in method.uses else "source"
    # A lane's own config: `pretrain=` resolved to its init_from (the shared one has none).
    untrained = untrained_head(prog.lanes[0].cfg, params, method, freeze, recipe)
    if untrained:
        log.warning("method=%s trains %s, not head/: the accuracies in summary.json are a "
                    "random head's; evaluate the backbone with measure=[cluster] or a transfer "
                    "run (pretrain=...)", cfg["method"]["name"], method.trainable)
    target = roles.target
    val_policy = (target if labeled == "target" else roles.source or target).val_policy
    count = num_params(params, stats)

    def one(lane: Lane) -> dict:
        return {
            "status": "completed",
            "step": prog.total,
            "seed": lane.seed,
            "method": cfg["method"]["name"],
            "source": roles.source_name,
            "target": target.name,
            "model": cfg["model"]["name"],
            "num_classes": target.num_classes,
            "fingerprint": rundir.fingerprint(lane.cfg),
            "steps_per_call": prog.spc,
            "vmapped_seeds": len(prog.lanes) if prog.vmapped else 1,
            **({"search": lane.search} if lane.search else {}),  # a search lane's sample
            "num_params": count,
            **weights_summary(cfg, params),  # model.weights: what loaded, what is new
            **({"feature_cache": roles.feature_cache} if roles.feature_cache else {}),
            **({"head": "untrained (random): the accuracies score a random head"}
               if untrained else {}),
            **lane.last_eval,
            **summary_keys(lane.writer.rows, labeled, lane.last_eval, prog.total, val_policy),
            "wall_time_s": time.time() - t0,
        }

    return [lane.failed or one(lane) for lane in prog.lanes]
