"""The search-based ColoredMNIST table, DomainBed's protocol shape: per method and trial (seed),
one of the trial's hyper-parameter samples (`<runs>/<method>/sample<k>/seed<s>`, a
`trainer.search` run) is chosen by each selection rule with `jtl.train.selection.
choose_across`, and the trial's result is that sample's -90% test accuracy; then mean +-
standard error over trials, the difference from ERM (source_only) paired by trial with a 95% t
interval, and DomainBed's published numbers (summarize.py's).

Rules (DomainBed's `model_selection.py`):
- training-domain validation: per sample, the evaluation with the best mean source val
  accuracy; the sample whose chosen evaluation scores best (IIDAccuracySelectionMethod);
- test-domain oracle, DomainBed's: per sample, the last evaluation; the sample with the best
  target *val* accuracy there, its target test accuracy reported (OracleSelectionMethod);
- test-domain oracle, jtl's: the sample and evaluation with the best target test accuracy
  (an upper bound, reference only).

Only completed lanes are read; a trial needs every sample of it completed (a diverged lane
counts as missing: its trial is left out and the count says so). Usage: summarize_search.py
[runs dir]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from jtl import rundir
from jtl.measures.stats import mean_ci
from jtl.train.selection import choose, choose_across, evaluations

_spec = importlib.util.spec_from_file_location("domainbed_summarize",
                                               Path(__file__).with_name("summarize.py"))
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

# rule -> (title, choose_across's rule, labeled role, the histories it reads, DomainBed's rule)
RULES = {
    "val": ("training-domain validation (DomainBed's IIDAccuracySelectionMethod)",
            "val", "source", "all", "val"),
    "oracle": ("test-domain oracle, DomainBed's: the last step, the sample by target val",
               "val", "target", "last", "oracle"),
    "jtl_oracle": ("test-domain oracle, jtl's: sample and step by target test (upper bound)",
                   "oracle", "source", "all", "oracle"),
}


def trials(out: Path, method: str) -> dict[int, dict[int, list[dict]]]:
    """{trial seed: {sample: evaluation records}} of the completed lanes."""
    found: dict[int, dict[int, list[dict]]] = {}
    for d in sorted((out / method).glob("sample*/seed*")):
        if rundir.completed_summary(d) is None:
            continue
        k, s = int(d.parent.name[6:]), int(d.name[4:])
        found.setdefault(s, {})[k] = evaluations(rundir.read_metrics(d))
    return found


# The training environments' test splits at the chosen step: whether a -90% accuracy near 50%
# comes with a classifier that still reads the training environments (DomainBed's invariant
# solutions are at ~72% there) or with a constant / colour-inverted one (~50% or below).
# (DomainBed's "Avg" column is another quantity: the mean over its three leave-one-out runs.)
ENVS = ("source.0/test/accuracy", "source.1/test/accuracy")


def chosen(out: Path, method: str, rule: str
           ) -> tuple[dict[int, float], dict[int, int], int, dict[int, float]]:
    """({trial: -90% test accuracy in points of the chosen sample}, {trial: chosen sample},
    samples per trial, {trial: the training environments' mean test accuracy there})."""
    _, how, labeled, reads, _ = RULES[rule]
    found = trials(out, method)
    n = max((len(v) for v in found.values()), default=0)
    acc, pick, avg3 = {}, {}, {}
    for s, runs in found.items():
        if len(runs) < n:
            continue  # a trial with a sample missing (unfinished or diverged)
        hist = {k: [h[-1:] if reads == "last" else h] for k, h in runs.items()}
        k, _, test = choose_across(hist, how, labeled)
        acc[s], pick[s] = 100.0 * test, k
        rec = choose(hist[k][0], how, labeled)
        if rec is not None and all(e in rec for e in ENVS):
            avg3[s] = 100.0 * sum(rec[e] for e in ENVS) / len(ENVS)
    return acc, pick, n, avg3


def table(out: Path, rule: str) -> list[str]:
    title, _, _, _, published = RULES[rule]
    lines = [f"**{title}** (-90% test environment)", "",
             "| method | trials x samples | jtl -90% | - ERM [95% CI], paired by trial | "
             "chosen samples | jtl +90%/+80% test (training envs) | DomainBed -90% | "
             "DomainBed avg of 3 envs |",
             "|---|---|---|---|---|---|---|---|"]
    erm, _, _, _ = chosen(out, "source_only", rule)
    for method in base.METHODS:
        acc, pick, n, avg3 = chosen(out, method, rule)
        if not acc:
            continue
        pub = base.PUBLISHED[published].get(method)
        seeds = sorted(set(acc) & set(erm))
        diff = "" if method == "source_only" or len(seeds) < 2 else (
            "{:+.1f} [{:+.1f}, {:+.1f}]".format(*mean_ci([acc[s] - erm[s] for s in seeds])))
        picks = ", ".join(str(pick[s]) for s in sorted(pick))
        pubs = f"{pub[0]:.1f} | {pub[1]:.1f}" if pub else " | "
        lines.append(f"| {base.LABEL[method]} | {len(acc)} x {n} | "
                     f"{base.mean_se(list(acc.values()))} | {diff} | {picks} | "
                     f"{base.mean_se(list(avg3.values())) if avg3 else ''} | {pubs} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="?", default="experiments/domainbed/runs_search", type=Path)
    args = ap.parse_args()
    for rule in RULES:
        print("\n".join(table(args.runs, rule)), end="\n\n")


if __name__ == "__main__":
    main()
