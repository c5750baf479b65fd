"""`python -m jtl.report <dir>` / `jtl-report`: one table over every run of a sweep.

A thin command line over `jtl.results.report` (grouping, intervals, NTG, files written):
see that module for what the table holds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from jtl.errors import JtlError
from jtl.results.report import DEFAULT_METRIC, build_report, write_report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m jtl.report",
        description="Aggregate summary.json/measures.json of every run under DIR into a table "
                    "of mean ± 95%% CI over seeds, grouped by the config keys that vary.")
    p.add_argument("dir", type=Path, help="a multirun (sweep) or runs dir")
    p.add_argument("--by", nargs="+", action="extend", metavar="KEY",
                   help="group by these dotted config keys instead of the varying ones")
    p.add_argument("--metric", nargs="+", action="extend", metavar="NAME",
                   help="only these metrics (default: all)")
    p.add_argument("--ignore", nargs="+", action="extend", default=[], metavar="KEY",
                   help="config keys never to group by")
    p.add_argument("--ntg", action="store_true",
                   help="add negative transfer: NTG against target_only on the same target "
                        "labels, or, for runs reading no target labels, the adaptation gain "
                        "vs source_only and NTG vs the zero-label baseline")
    p.add_argument("--baselines-dir", type=Path, default=None,
                   help="where jtl.measure cached the NTG baselines (default DIR/baselines)")
    p.add_argument("--plot-metric", default=DEFAULT_METRIC,
                   help=f"metric of the bar plot (default {DEFAULT_METRIC})")
    args = p.parse_args(argv)
    try:
        rep = build_report(args.dir, by=args.by, metrics=args.metric, ntg=args.ntg,
                           ignore=args.ignore, baselines_dir=args.baselines_dir)
        n_skipped = sum(rep.skipped.values())
        status = ", ".join(f"{s}: {n}" for s, n in sorted(rep.skipped.items()))
        print(f"{rep.n_runs} completed runs in {len(rep.rows)} groups"
              + (f"; skipped {n_skipped} not completed ({status})" if n_skipped else ""))
        for w in rep.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(rep.markdown, end="")
        written = write_report(rep, args.dir, args.plot_metric)
    except KeyboardInterrupt:
        print("\njtl: interrupted", file=sys.stderr)
        return 130
    except JtlError as e:
        print(f"jtl: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(written)} in {args.dir}")
    return 0
