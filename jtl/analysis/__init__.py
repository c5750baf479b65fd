"""Open runs and sweeps in Python or a notebook (`notebooks/`), and compare networks.

    run = jtl.load_run("runs/...", step="final")   # or "best", or a checkpoint step
    run.metrics(); run.summary(); run.predict("target", "test")
    run.features("target", "test", layer="backbone/blocks/0")
    grid = jtl.load_grid("multirun/...")           # one row per run; per="group": the report
    param_change(source.params, finetuned.params)  # which layers moved (relative L2)
    cka_by_layer(source, finetuned)                # linear CKA per layer, same inputs
"""

from jtl.analysis.compare import cka_by_layer, layer_of, linear_cka, param_change
from jtl.analysis.grid import load_grid
from jtl.analysis.run import LoadedRun, load_run, resolve_step

__all__ = ["LoadedRun", "cka_by_layer", "layer_of", "linear_cka", "load_grid", "load_run",
           "param_change", "resolve_step"]
