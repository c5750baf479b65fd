"""`python -m jtl.measure run_dir=DIR measure=[pad,mmd,...]` / `jtl-measure`: measure trained runs.

Arguments are Hydra overrides composed against `conf/` with a primary config stored here
(`jtl_measure`), so `measure=[pad,tsne]` picks `conf/measure/*.yaml` exactly as training's
`+measure=[...]` does and `measure.pad.n_boot=200` sets one option. Hydra's compose API is
used rather than `@hydra.main`: measuring writes into the run dir it reads, so it must not
create an output dir, a `.hydra/` folder or a log file of its own.

    run_dir      a run dir, or a sweep dir: every completed run under it (not its baselines)
    layer        which layer's outputs the feature measures read (default `features`)
    split        which split of both domains the feature measures read (default `test`);
                 leep, logme, hscore, nce always read the target train split
    max_samples  cap per domain before any measure's own cap (default 2000)
    step         checkpoint step (default: the latest)
    seed         subsampling seed (default: each run's seed)

Values go to `<run>/measures.json` (merged, atomic) and are printed; `tsne` writes a PNG there.
`ntg` pairs each run with its references (`jtl/measures/ntg.py`: target_only on the same
target labels, or source_only and the zero-label baseline for a run that reads no target
labels), trains the missing ones into `measure.ntg.baselines_dir` (default `<sweep dir or run
parent>/baselines`) and reuses them on the next call.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jtl.errors import JtlError

PRIMARY = "jtl_measure"
APP_DEFAULTS: dict[str, Any] = {
    "run_dir": "???",
    "layer": "features",
    "split": "test",
    "max_samples": 2000,
    "step": None,
    "seed": None,
}


def compose(overrides: Sequence[str]) -> dict[str, Any]:
    """The app config for these overrides (jtl.config.compose on the `jtl_measure` primary
    config), with Hydra's errors explained in terms of this command's keys."""
    from hydra.core.config_store import ConfigStore

    from jtl import config
    from jtl.measures import MEASURES

    ConfigStore.instance().store(name=PRIMARY,
                                 node={"defaults": [{"measure": []}, "_self_"], **APP_DEFAULTS})
    try:
        return config.compose(overrides, config_name=PRIMARY)
    except JtlError as e:
        cause = str(e.__cause__ or e)
        msg = cause.splitlines()[0].rstrip(".")
        if "measure/" in cause:
            msg += f". Known measures: {', '.join(MEASURES.names())}"
        elif "Could not override" in msg:
            msg += (f". Keys: {', '.join(APP_DEFAULTS)}, measure=[...] and "
                    "measure.<name>.<option>")
        elif "run_dir" in cause:
            msg = "missing run_dir=<a run dir or sweep dir>"
        raise JtlError(msg) from e.__cause__


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def run(overrides: Sequence[str]) -> dict[Path, dict[str, Any]]:
    """Compose, measure, print; returns the values per run dir."""
    cfg = compose(overrides)
    from jtl import schema

    schema.validate_measure_app(cfg)  # types and ranges of every option, before any work
    import logging

    from jtl.measures.run import FeatureOptions, measure_path

    logging.getLogger("absl").setLevel(logging.WARNING)
    opts = FeatureOptions(layer=str(cfg["layer"]), split=str(cfg["split"]),
                          max_samples=cfg["max_samples"], step=cfg["step"], seed=cfg["seed"])
    results = measure_path(cfg["run_dir"], cfg.get("measure") or {}, opts)
    for d, values in results.items():
        print(f"{d}:")
        for k, v in sorted(values.items()):
            if v is not None:  # null: an NTG key that does not apply to this run
                print(f"  {k}: {_fmt(v)}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    try:
        run(args)
    except KeyboardInterrupt:
        print("\njtl: interrupted", file=sys.stderr)
        return 130
    except JtlError as e:
        print(f"jtl: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
