"""Model selection after training: at which evaluation a run's result is read.

A run's evaluations are records (the `metrics.jsonl` rows holding `target/test/accuracy`). A
rule picks one record by something other than the number it reports, and the summary writes,
per rule, `selected/<rule>/step` and `selected/<rule>/target/test/accuracy`: selection is a
first-class choice over the records (DomainBed's model_selection.py), not a side effect of
the loop, and `choose` reads any run's records the same way for `jtl.report`.

Rules over one run's steps:
- `val` (honest): highest accuracy on the validation split of the domain whose labels the
  method trains on: source val (with several sources, the mean over them: DomainBed's
  training-domain validation), or target val for methods that read target labels.
- `oracle`: highest target test accuracy, an upper bound for reference, never a result.
- `dev` (label-free): lowest DEV risk (jtl/train/dev.py), for runs that read no target labels.
- `eval` (held-out domains): highest mean accuracy over the run's `eval` domains (their test
  split, all the labeled data the run never trains on), i.e. a training domain left out:
  DomainBed's leave-one-domain-out validation within one run.

Across runs, `choose_across` picks among configurations (hyper-parameters) by the mean over
each configuration's runs of the score its rule chose them at: DomainBed's model selection
over a sweep (with `eval`, over the runs that each left another training domain out).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jtl import rundir
from jtl.errors import JtlError

Record = Mapping[str, Any]
TEST = "target/test/accuracy"


def evaluations(history: Sequence[Record]) -> list[Record]:
    """The records of a run's history that are evaluations (target test scored)."""
    return [r for r in history if TEST in r]


def by_val(evals: Sequence[Record], labeled: str = "source") -> Record | None:
    """Highest `<labeled>/val/accuracy`, the earliest on ties; None without validation."""
    key = f"{labeled}/val/accuracy"
    rows = [r for r in evals if key in r]
    return max(rows, key=lambda r: (r[key], -r["step"])) if rows else None


def by_oracle(evals: Sequence[Record], labeled: str = "source") -> Record | None:
    """Highest target test accuracy, the earliest on ties (reference only)."""
    return max(evals, key=lambda r: (r[TEST], -r["step"])) if evals else None


def by_dev(evals: Sequence[Record], labeled: str = "source") -> Record | None:
    """Lowest finite DEV risk, the earliest on ties; None without DEV risks."""
    rows = [r for r in evals if "dev/risk" in r and math.isfinite(r["dev/risk"])]
    return min(rows, key=lambda r: (r["dev/risk"], r["step"])) if rows else None


def eval_score(record: Record) -> float | None:
    """Mean test accuracy over a record's `eval` domains; None without any."""
    accs = [v for k, v in record.items() if k.startswith("eval/") and k.endswith("/test/accuracy")]
    return sum(accs) / len(accs) if accs else None


def by_eval(evals: Sequence[Record], labeled: str = "source") -> Record | None:
    """Highest mean held-out-domain accuracy (`eval_score`), the earliest on ties."""
    rows = [r for r in evals if eval_score(r) is not None]
    return max(rows, key=lambda r: (eval_score(r), -r["step"])) if rows else None


RULES: dict[str, Callable[[Sequence[Record], str], Record | None]] = {
    "val": by_val, "oracle": by_oracle, "dev": by_dev, "eval": by_eval}
# The number each rule chooses by (higher is better), for `choose_across`.
SCORES: dict[str, Callable[[Record, str], float]] = {
    "val": lambda r, labeled: r[f"{labeled}/val/accuracy"],
    "oracle": lambda r, labeled: r[TEST],
    "dev": lambda r, labeled: -r["dev/risk"],
    "eval": lambda r, labeled: eval_score(r),
}


def choose(history: Sequence[Record], rule: str, labeled: str = "source") -> Record | None:
    """The evaluation record `rule` selects from a run's history (None: the rule does not
    apply, e.g. no validation split or no DEV risk)."""
    if rule not in RULES:
        raise JtlError(f"selection rule {rule!r}: use one of {sorted(RULES)}")
    return RULES[rule](evaluations(history), labeled)


def select_dev(history: Sequence[Record]) -> dict[str, Any]:
    """`selected/dev/...`: step, target test accuracy and the weights' ESS (how far to trust
    the choice); {} without DEV risks."""
    best = choose(history, "dev")
    if best is None:
        return {}
    out = {"selected/dev/step": best["step"], "selected/dev/target/test/accuracy": best[TEST]}
    if "dev/ess" in best:
        out["selected/dev/ess"] = best["dev/ess"]
    return out


def summary_keys(history: Sequence[Record], labeled: str, final: Record, total: int,
                 val_policy: str | None) -> dict[str, Any]:
    """Every rule's choice as summary keys. Without a validation split the honest choice is the
    final step, and the summary says so (`selected/val/split`)."""
    out: dict[str, Any] = {"selected/val/policy": val_policy} if val_policy else {}
    honest = choose(history, "val", labeled)
    if honest is not None:
        out.update({"selected/val/split": f"{labeled}/val", "selected/val/step": honest["step"],
                    f"selected/val/{TEST}": honest[TEST]})
    else:
        out.update({"selected/val/split": "none (no validation split): final step",
                    "selected/val/step": total, f"selected/val/{TEST}": final[TEST]})
    oracle = choose(history, "oracle")
    if oracle is not None:
        out.update({"selected/oracle/step": oracle["step"],
                    f"selected/oracle/{TEST}": oracle[TEST]})
    out.update(select_dev(history))
    held_out = choose(history, "eval")
    if held_out is not None:
        out.update({"selected/eval/step": held_out["step"],
                    f"selected/eval/{TEST}": held_out[TEST]})
    return out


def choose_across(runs: Mapping[Any, Sequence[Sequence[Record]]], rule: str,
                  labeled: str = "source") -> tuple[Any, float, float]:
    """(the configuration whose runs score best under `rule` on average, that mean score, the
    mean target test accuracy of its runs at their chosen steps). `runs` maps a configuration
    (e.g. its hyper-parameters) to its runs' histories; a run the rule cannot read is an
    error naming the configuration, not a silent gap."""
    best: tuple[Any, float, float] | None = None
    for cfg, histories in runs.items():
        chosen = [choose(h, rule, labeled) for h in histories]
        if not chosen or any(c is None for c in chosen):
            raise JtlError(f"selection rule {rule!r} cannot read every run of {cfg!r}")
        score = sum(SCORES[rule](c, labeled) for c in chosen) / len(chosen)
        test = sum(c[TEST] for c in chosen) / len(chosen)
        if best is None or score > best[1]:
            best = (cfg, score, test)
    if best is None:
        raise JtlError("choose_across: no runs")
    return best


def choose_in_run(run_dir: str | Path, rule: str, labeled: str = "source") -> Record | None:
    """`choose` over a run dir's `metrics.jsonl`."""
    return choose(rundir.read_metrics(run_dir), rule, labeled)


def missing_choices(run_dir: str | Path, summary: Mapping[str, Any]) -> dict[str, float]:
    """`selected/<rule>/target/test/accuracy` of every rule the summary does not hold, chosen
    from the run's records: what `jtl.report` adds, so a run summarised before a rule existed
    (or by a rule the summary leaves out) is read the same way as a new one. The labeled role
    is the one the summary's honest choice names (`selected/val/split`), else the source."""
    todo = [r for r in RULES if f"selected/{r}/{TEST}" not in summary]
    if not todo:
        return {}
    split = str(summary.get("selected/val/split", "source/val"))
    labeled = split.split("/")[0] if split.endswith("/val") else "source"
    history = rundir.read_metrics(run_dir)
    out = {}
    for rule in todo:
        best = choose(history, rule, labeled)
        if best is not None:
            out[f"selected/{rule}/{TEST}"] = float(best[TEST])
    return out
