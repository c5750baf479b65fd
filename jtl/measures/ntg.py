"""Negative transfer gap (Wang et al., CVPR 2019), paired by seed.

    NTG_s = err(transfer run, seed s) - err(target_only run, seed s)

on the same target test split. Pairing by seed removes the variance the two runs share
(same split, same initialisation stream). The verdict reads the 95% Student-t interval of the
mean paired difference: above zero -> "negative transfer" (the source hurt), below zero ->
"positive", straddling zero (or a single seed, whose interval is infinite) -> "inconclusive".
"""

from __future__ import annotations

from collections.abc import Mapping

from jtl.errors import JtlError
from jtl.measures.base import MEASURES, MeasureContext, MeasureValues
from jtl.measures.stats import mean_ci

NEGATIVE, POSITIVE, INCONCLUSIVE = "negative transfer", "positive", "inconclusive"


def verdict(ci_low: float, ci_high: float) -> str:
    if ci_low > 0:
        return NEGATIVE
    if ci_high < 0:
        return POSITIVE
    return INCONCLUSIVE


def negative_transfer_gap(
    transfer_err: Mapping[int, float], baseline_err: Mapping[int, float], level: float = 0.95
) -> MeasureValues:
    """NTG mean, CI, number of pairs and verdict from per-seed target test errors.

    Every seed must appear on both sides: an unpaired seed usually means a crashed or
    not-yet-run baseline, and silently dropping it would bias the comparison.
    """
    only_transfer = sorted(set(transfer_err) - set(baseline_err))
    only_baseline = sorted(set(baseline_err) - set(transfer_err))
    if only_transfer or only_baseline:
        raise JtlError(
            "NTG pairs runs by seed, but seed(s) "
            + "; ".join(
                part for part in (
                    f"{only_transfer} have no target_only run" if only_transfer else "",
                    f"{only_baseline} have no transfer run" if only_baseline else "",
                ) if part
            )
            + ". Run the missing seeds or restrict both sides to the same seeds."
        )
    if not transfer_err:
        raise JtlError("NTG needs at least one seed with both a transfer and a target_only run")
    seeds = sorted(transfer_err)
    gaps = [float(transfer_err[s]) - float(baseline_err[s]) for s in seeds]
    mean, low, high = mean_ci(gaps, level)
    return {"ntg_mean": mean, "ntg_ci_low": low, "ntg_ci_high": high, "ntg_n": len(gaps),
            "ntg_verdict": verdict(low, high)}


@MEASURES.register("ntg")
def ntg_measure(ctx: MeasureContext, level: float = 0.95, metric: str = "target/test/accuracy",
                baselines_dir: str | None = None, launch: bool = True) -> MeasureValues:
    """NTG from the per-seed errors the caller collected for this run and its baselines.

    `metric`, `baselines_dir` and `launch` tell `jtl.measures.baselines` how to collect those
    errors (err = 1 - metric; where baselines are cached; whether to train missing ones); they
    live here so that `measure.ntg.*` configures all of NTG in one place.
    """
    transfer, baseline = ctx.need("ntg", "transfer_err", "baseline_err")
    return negative_transfer_gap(transfer, baseline, level)
