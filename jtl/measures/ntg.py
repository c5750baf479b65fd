"""Negative transfer, fairly accounted (Wang et al., CVPR 2019), paired by seed.

Wang et al. define the negative transfer gap of an algorithm A trained on source data S and
target data T as NTG = err(A(S, T)) - err(A(0, T)): the baseline sees *exactly the target
data the transfer run saw*, and no source. What a baseline can learn from is the target's
labels, so jtl pairs a run by the target labels its method reads
(`"target/y" in METHODS.get(cfg["method"]["name"]).uses`, `jtl.results.baselines`):

* A run that reads target labels (target_only fine-tuned from a source run, ...) is compared
  with `target_only` trained from scratch on the same target labels: the same target config
  (`per_class` subset, shifts, split_seed), the same seed, model, optimizer, steps and batch
  size.

      NTG_s = err(run, seed s) - err(target_only on the same labels, seed s)

  Keys `ntg_mean`, `ntg_ci_low`, `ntg_ci_high`, `ntg_n`, `ntg_verdict`: "negative transfer"
  when the 95% interval lies above 0 (the source hurt), "positive" below 0.
* A run that reads no target labels (source_only, dann, cdan, mcc, ...) had zero target
  labels. A target_only trained on all of them is not its baseline: that comparison calls
  nearly every domain adaptation "negative transfer" and says nothing about adaptation. Such
  a run gets no `ntg_mean`. Its number is the *adaptation gain* over the paired `source_only`
  run (same source, target, model, optimizer, steps, seed):

      gain_s = err(source_only, seed s) - err(run, seed s)   (= its accuracy minus source_only's)

  keys `ntg_adaptation_gain_*`, verdict "adaptation helps" / "adaptation hurts". Its NTG
  proper is against the zero-label baseline A(0, 0), a classifier that has seen no target
  label, at chance error 1 - 1/C for C classes; the keys say so: `ntg_zero_label_*`.

Pairing by seed removes the variance the two runs share (same split, same initialisation
stream). Verdicts read the 95% Student-t interval of the mean paired difference; an interval
straddling zero (or a single seed, whose interval is infinite) is "inconclusive".
"""

from __future__ import annotations

from collections.abc import Mapping

from jtl.errors import JtlError
from jtl.measures.base import MEASURES, MeasureContext, MeasureValues
from jtl.measures.stats import mean_ci

NEGATIVE, POSITIVE, INCONCLUSIVE = "negative transfer", "positive", "inconclusive"
HELPS, HURTS = "adaptation helps", "adaptation hurts"
# Prefixes of the three comparisons' keys (`<prefix>_mean`, `_ci_low`, `_ci_high`, `_n`,
# `_verdict`).
NTG, GAIN, ZERO_LABEL = "ntg", "ntg_adaptation_gain", "ntg_zero_label"
# Per-run keys beside the group's: what the group was compared with, the run's own
# differences, errors and references.
RUN_KEYS = ("ntg_baseline", "ntg_transfer_err", "ntg_gap", "ntg_baseline_err",
            "ntg_baseline_dir", "ntg_adaptation_gain", "ntg_source_only_err",
            "ntg_source_only_dir", "ntg_zero_label_gap", "ntg_zero_label_err")
# Every key NTG writes: a run measured again writes all of them, the inapplicable ones as
# null, so a stale value of the other kind never survives in measures.json.
ALL_KEYS = (*(f"{p}_{s}" for p in (NTG, GAIN, ZERO_LABEL)
              for s in ("mean", "ci_low", "ci_high", "n", "verdict")), *RUN_KEYS)
# What `ntg_baseline` says a run was compared with.
SAME_LABELS = "target_only on the same target labels"
NO_LABELS = ("none: reads no target labels; adaptation gain vs source_only, NTG vs the "
             "zero-label (chance) baseline")
REFERENCE = "reference (source_only from scratch)"


def verdict(ci_low: float, ci_high: float, above: str = NEGATIVE, below: str = POSITIVE) -> str:
    """NTG's verdict: above zero, the transfer run errs more than its baseline (`above`)."""
    if ci_low > 0:
        return above
    if ci_high < 0:
        return below
    return INCONCLUSIVE


def gain_verdict(ci_low: float, ci_high: float) -> str:
    """Adaptation gain's verdict: above zero, adaptation lowered the error."""
    return verdict(ci_low, ci_high, above=HELPS, below=HURTS)


def chance_error(num_classes: int) -> float:
    """Target error of the zero-label baseline: a classifier that has seen no target label."""
    if num_classes < 2:
        raise JtlError(f"a zero-label baseline needs at least 2 classes, got {num_classes}")
    return 1.0 - 1.0 / num_classes


def _paired(minuend: Mapping[int, float], subtrahend: Mapping[int, float], level: float,
            names: tuple[str, str]) -> tuple[float, float, float, int]:
    """Mean and interval of minuend[s] - subtrahend[s] over seeds; every seed on both sides.

    An unpaired seed usually means a crashed or not-yet-run baseline, and silently dropping
    it would bias the comparison."""
    only_a = sorted(set(minuend) - set(subtrahend))
    only_b = sorted(set(subtrahend) - set(minuend))
    if only_a or only_b:
        parts = ([f"{only_a} have no {names[1]} run"] if only_a else []) + (
            [f"{only_b} have no {names[0]} run"] if only_b else [])
        raise JtlError(f"{names[0]} and {names[1]} runs are paired by seed, but seed(s) "
                       + "; ".join(parts)
                       + ". Run the missing seeds or restrict both sides to the same seeds.")
    if not minuend:
        raise JtlError(f"need at least one seed with both a {names[0]} and a {names[1]} run")
    seeds = sorted(minuend)
    mean, low, high = mean_ci([float(minuend[s]) - float(subtrahend[s]) for s in seeds], level)
    return mean, low, high, len(seeds)


def _values(prefix: str, stats: tuple[float, float, float, int], judge) -> MeasureValues:
    mean, low, high, n = stats
    return {f"{prefix}_mean": mean, f"{prefix}_ci_low": low, f"{prefix}_ci_high": high,
            f"{prefix}_n": n, f"{prefix}_verdict": judge(low, high)}


def negative_transfer_gap(
    transfer_err: Mapping[int, float], baseline_err: Mapping[int, float], level: float = 0.95
) -> MeasureValues:
    """NTG mean, CI, number of pairs and verdict from per-seed target test errors of runs
    that read target labels and their target_only baselines on the same labels."""
    return _values(NTG, _paired(transfer_err, baseline_err, level, ("transfer", "target_only")),
                   verdict)


def adaptation_gain(
    transfer_err: Mapping[int, float], source_only_err: Mapping[int, float], level: float = 0.95
) -> MeasureValues:
    """err(source_only) - err(run) per seed: how much adapting without target labels helped."""
    return _values(GAIN, _paired(source_only_err, transfer_err, level,
                                 ("source_only", "transfer")), gain_verdict)


def zero_label_gap(transfer_err: Mapping[int, float], chance_err: float,
                   level: float = 0.95) -> MeasureValues:
    """NTG of a run that read no target label against the zero-label baseline (chance)."""
    return _values(ZERO_LABEL, _paired(transfer_err, dict.fromkeys(transfer_err, chance_err),
                                       level, ("transfer", "zero-label")), verdict)


@MEASURES.register("ntg")
def ntg_measure(ctx: MeasureContext, level: float = 0.95, metric: str = "target/test/accuracy",
                baselines_dir: str | None = None, launch: bool = True) -> MeasureValues:
    """NTG from per-seed errors already paired by `jtl.results.baselines` (same labels).

    `metric`, `baselines_dir` and `launch` tell `jtl.results.baselines` how to collect those
    errors (err = 1 - metric; where baselines are cached; whether to train missing ones); they
    live here so that `measure.ntg.*` configures all of NTG in one place.
    """
    transfer, baseline = ctx.need("ntg", "transfer_err", "baseline_err")
    return negative_transfer_gap(transfer, baseline, level)
