"""`load_grid`: every run of a sweep dir as a pandas DataFrame, the table `jtl.report` prints.

Built on `jtl.results.report` (same runs, same varying keys, same intervals), so a notebook
and `python -m jtl.report DIR` never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from jtl.errors import JtlError
from jtl.results import report

if TYPE_CHECKING:
    import pandas as pd

DIRECTION = "direction"  # column: 'source → target'


def load_grid(root: str | Path, per: Literal["run", "group"] = "run",
              by: Sequence[str] | None = None, ntg: bool = False,
              metrics: Sequence[str] | None = None, ignore: Sequence[str] = (),
              baselines_dir: str | Path | None = None) -> pd.DataFrame:
    """The completed runs under `root`.

    per="run": one row per run: `run_dir`, `direction` (source → target), `seed`, the config
    keys that vary across runs (`df.attrs["keys"]`), and every metric of its summary.json
    and measures.json.
    per="group": `jtl.report`'s table (`by`, `ntg`, `metrics`, `ignore`, `baselines_dir`
    as its options; NTG's references are looked up under `root` and `baselines_dir`): one
    row per group with `n` = distinct seeds and `<metric>/mean`, `/ci_low`, `/ci_high`, `/n`
    (95% Student-t over seeds, runs of one seed averaged first).
    """
    import pandas as pd

    root = Path(root)
    if not root.is_dir():
        raise JtlError(f"grid dir {root} does not exist; pass a sweep dir (the "
                       "hydra.sweep.dir of a -m run) or a folder of run dirs")
    if per == "group":
        rep = report.build_report(root, by=by, metrics=metrics, ntg=ntg, ignore=ignore,
                                  baselines_dir=baselines_dir)
        df = pd.DataFrame(rep.rows)
        df.insert(0, DIRECTION, [report.group_value(g, report.direction) for g in rep.groups])
        df.attrs.update(keys=rep.keys, metrics=rep.metrics, warnings=rep.warnings)
        return df
    if per != "run":
        raise JtlError(f"per must be 'run' or 'group', got {per!r}")
    runs, skipped = report.load_runs(root)
    if not runs:
        raise JtlError(f"no completed runs under {root} (skipped {sum(skipped.values())} not "
                       "completed)")
    keys = list(by) if by else report.varying_keys(runs, ignore)
    df = pd.DataFrame([{"run_dir": str(r.path), DIRECTION: report.direction(r.config),
                        "seed": r.seed, **{k: r.config.get(k) for k in keys}, **r.metrics}
                       for r in runs])
    df.attrs.update(keys=keys)
    return df
