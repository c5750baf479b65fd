"""The ColoredMNIST table beside DomainBed's published numbers: per method, the -90% test
environment's accuracy over seeds under training-domain validation (`selected/val`: the mean
of the sources' val accuracies) and the test-domain oracle (`selected/oracle`), mean +-
standard error, and at the final step (DomainBed's oracle picks hyper-parameters by the test
environment and reads the last checkpoint, so with one setting it is the final step), each
method's difference from ERM (source_only) paired by seed with a 95% t
interval (jtl.measures.stats.mean_ci), and DomainBed's -90% column and 3-environment average.

Only completed runs are read. Usage: summarize.py [runs dir]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jtl import rundir
from jtl.measures.stats import mean_ci

TEST = "target/test/accuracy"
# rule -> (title, summary key, DomainBed's rule it stands beside)
RULES = {
    "val": ("training-domain validation: the evaluation with the best mean source val",
            f"selected/val/{TEST}", "val"),
    "oracle": ("test-domain oracle, jtl's: the evaluation with the best target test accuracy",
               f"selected/oracle/{TEST}", "oracle"),
    "final": ("test-domain oracle, DomainBed's for one hyper-parameter setting: the last step",
              TEST, "oracle"),
}
METHODS = ("source_only", "irm", "vrex", "group_dro", "mixup", "mldg", "dg_coral", "dg_mmd",
           "dg_dann", "cdann", "sagnet", "rsc", "fish")
LABEL = {"source_only": "ERM", "irm": "IRM", "vrex": "VREx", "group_dro": "GroupDRO",
         "mixup": "Mixup", "mldg": "MLDG", "dg_coral": "CORAL", "dg_mmd": "MMD",
         "dg_dann": "DANN", "cdann": "CDANN", "sagnet": "SagNet", "rsc": "RSC", "fish": "Fish"}
# DomainBed 2020_10_06_7df6f06/results.tex, ColoredMNIST: (-90% column, average of the three
# test environments), per selection rule. These come from a 20-sample hyper-parameter search
# x 3 trials at 5001 steps; jtl's rows are DomainBed's default hyper-parameters only. Fish is
# not in that results.tex (it came to DomainBed later): no published number beside it.
PUBLISHED = {
    "val": {"source_only": (10.0, 51.5), "irm": (10.2, 52.0), "vrex": (10.2, 51.8),
            "group_dro": (10.0, 52.1), "mixup": (10.1, 52.1), "mldg": (9.8, 51.5),
            "dg_coral": (9.9, 51.5), "dg_mmd": (9.9, 51.5), "dg_dann": (10.0, 51.5),
            "cdann": (10.2, 51.7), "sagnet": (10.3, 51.7), "rsc": (10.0, 51.7)},
    "oracle": {"source_only": (28.7, 57.8), "irm": (58.5, 67.7), "vrex": (55.2, 67.0),
               "group_dro": (36.8, 61.1), "mixup": (28.6, 58.4), "mldg": (29.1, 58.2),
               "dg_coral": (31.1, 58.6), "dg_mmd": (50.6, 63.3), "dg_dann": (24.9, 57.0),
               "cdann": (33.8, 59.5), "sagnet": (29.4, 58.2), "rsc": (30.2, 58.5)},
}


def accuracies(out: Path, method: str, rule: str) -> dict[int, float]:
    """{seed: -90% test accuracy in points at the rule's step} over completed runs."""
    found = {}
    for d in sorted((out / method).glob("seed*")):
        s = rundir.completed_summary(d)
        key = RULES[rule][1]
        if s is not None and key in s:
            found[int(d.name[4:])] = 100.0 * float(s[key])
    return found


def mean_se(x: list[float]) -> str:
    se = np.std(x, ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return f"{np.mean(x):.1f} +- {se:.1f}"


def table(out: Path, rule: str) -> list[str]:
    title, key, published = RULES[rule]
    lines = [f"**{title}** (`{key}`, -90% test environment)", "",
             "| method | seeds | jtl -90% | - ERM [95% CI], paired by seed | "
             "DomainBed -90% | DomainBed avg of 3 envs |", "|---|---|---|---|---|---|"]
    erm = accuracies(out, "source_only", rule)
    for method in METHODS:
        acc = accuracies(out, method, rule)
        if not acc:
            continue
        pub = [f"{v:.1f}" for v in PUBLISHED[published].get(method, ())] or ["-", "-"]
        seeds = sorted(set(acc) & set(erm))
        diff = "" if method == "source_only" or len(seeds) < 2 else (
            "{:+.1f} [{:+.1f}, {:+.1f}]".format(*mean_ci([acc[s] - erm[s] for s in seeds])))
        lines.append(f"| {LABEL[method]} | {len(acc)} | {mean_se(list(acc.values()))} | "
                     f"{diff} | {pub[0]} | {pub[1]} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="?", default="experiments/domainbed/runs", type=Path)
    args = ap.parse_args()
    for rule in RULES:
        print("\n".join(table(args.runs, rule)), end="\n\n")


if __name__ == "__main__":
    main()
