"""`load_run`: one finished (or running) run, opened for analysis in a notebook.

A thin layer over `jtl.train.runs` (the restore path `jtl.measure` uses) and `jtl.rundir`
(the files): the config, the network with a checkpoint's parameters, both domains, and the
run's records as plain Python / pandas objects.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jtl import rundir
from jtl.errors import JtlError
from jtl.train import runs

if TYPE_CHECKING:
    import pandas as pd

    from jtl.domains import Domain
    from jtl.domains.base import Split
    from jtl.methods import Method
    from jtl.models import Network

DOMAINS = ("source", "target")
SPLITS = ("train", "val", "test")
# The summary key of the honest model-selection step (`step="best"`).
BEST_STEP_KEY = "selected/val/step"


@dataclasses.dataclass
class LoadedRun:
    """A run dir opened at one checkpoint `step`; `network` holds that step's parameters."""

    run_dir: Path
    cfg: dict[str, Any]
    network: Network
    source: Domain
    target: Domain
    method: Method
    step: int

    # Records ------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """summary.json ({} while the run has none)."""
        return rundir.read_summary(self.run_dir) or {}

    def metrics(self) -> pd.DataFrame:
        """metrics.jsonl, one row per logged step (train means and evaluations), by step."""
        import pandas as pd

        df = pd.DataFrame(rundir.read_metrics(self.run_dir))
        return df.sort_values("step", kind="stable").reset_index(drop=True) if len(df) else df

    def measures(self) -> dict[str, Any]:
        """measures.json's values (the step each was taken at: `rundir.read_measures`)."""
        return rundir.read_measures(self.run_dir)[0]

    def steps(self) -> list[int]:
        """The checkpoint steps this run dir holds, oldest first."""
        return runs.checkpoint_steps(self.run_dir)

    # The network --------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        """This step's parameters as a pure dict (`backbone/blocks/0/...` paths)."""
        from flax import nnx

        return nnx.split(self.network)[1].to_pure_dict()

    def layers(self) -> list[str]:
        """Layer names `features` accepts."""
        return runs.layer_names(self.network)

    def domain(self, domain: str) -> Domain:
        if domain not in DOMAINS:
            raise JtlError(f"domain must be one of {DOMAINS}, got '{domain}'")
        return self.source if domain == "source" else self.target

    def data(self, domain: str = "target", split: str = "test") -> Split:
        """The split's images (N, H, W, C) and labels, as the run was trained/evaluated on."""
        if split not in SPLITS:
            raise JtlError(f"split must be one of {SPLITS}, got '{split}'")
        return getattr(self.domain(domain), split)

    def features(self, domain: str = "target", split: str = "test",
                 layer: str = "features") -> np.ndarray:
        """(N, D) outputs of `layer` (`layers()`: blocks, features, logits, probs)."""
        return runs.features(self.network, self.data(domain, split).x, layer)

    def predict(self, domain: str = "target", split: str = "test") -> np.ndarray:
        """Predicted classes (N,) of the split's examples."""
        return self.features(domain, split, "logits").argmax(1)

    def accuracy(self, domain: str = "target", split: str = "test") -> float:
        return float(np.mean(self.predict(domain, split) == self.data(domain, split).y))

    # Other checkpoints ----------------------------------------------------------------------

    def params_at(self, step: int | str) -> dict[str, Any]:
        """Another checkpoint's parameters, without reloading the data sets."""
        return runs.restore_params(self.run_dir, resolve_step(self.run_dir, step), self.params)

    def at(self, step: int | str) -> LoadedRun:
        """The same run at another checkpoint (shares the loaded domains)."""
        from flax import nnx

        step = resolve_step(self.run_dir, step)
        graphdef = nnx.split(self.network)[0]
        network = nnx.merge(graphdef, runs.restore_params(self.run_dir, step, self.params))
        return dataclasses.replace(self, network=network, step=step)

    def initial_params(self) -> dict[str, Any]:
        """The parameters training started from, as the trainer made them
        (`jtl.train.trainer.initial_params`): the fresh initialisation, with what
        `init_from`/`load`/`dont_load` loaded from the source run (the pretrained weights of a
        fine-tuned run) and a recipe's prototype head."""
        from jtl.train.build import initial_params

        absl = logging.getLogger("absl")  # orbax warns that it skipped the opt_state
        level = absl.level
        absl.setLevel(logging.ERROR)
        try:
            return initial_params(self.cfg, self.target, self.method, source=self.source)
        finally:
            absl.setLevel(level)


def resolve_step(run_dir: str | Path, step: int | str) -> int:
    """"final" (the completed step, else the latest checkpoint), "best" (the honest
    validation choice, `selected/val/step`), or a checkpoint step; checked against the
    checkpoints the dir holds."""
    run_dir = Path(run_dir)
    steps = runs.checkpoint_steps(run_dir)
    if not steps:
        raise JtlError(f"{run_dir} holds no checkpoint (status {rundir.status(run_dir)}); train "
                       "it (run its command again) before loading it")
    if step == "final":
        done = rundir.completed_step(run_dir)
        return steps[-1] if done is None else done
    if step == "best":
        summary = rundir.read_summary(run_dir) or {}
        if BEST_STEP_KEY not in summary:
            raise JtlError(f"{run_dir}: no {BEST_STEP_KEY} in summary.json (status "
                           f"{rundir.status(run_dir)}); load step='final' or a step of {steps}")
        best = int(summary[BEST_STEP_KEY])
        if best not in steps:
            raise JtlError(f"{run_dir}: the best step {best} ({BEST_STEP_KEY}) was not kept "
                           f"as a checkpoint (kept: {steps}); train with "
                           "trainer.checkpoint_every=<eval_every> and a larger "
                           "trainer.keep_checkpoints to keep it")
        return best
    if isinstance(step, bool) or not isinstance(step, int | np.integer):
        raise JtlError(f"step must be 'final', 'best' or a checkpoint step, got {step!r}")
    if int(step) not in steps:
        raise JtlError(f"{run_dir} has no checkpoint at step {step}; it has {steps}")
    return int(step)


def load_run(run_dir: str | Path, step: int | str = "final") -> LoadedRun:
    """Open `run_dir` at `step` ("final", "best" or a checkpoint step).

    A dir that does not exist, is not a run, or holds no checkpoint fails with a JtlError
    that says so, before any data set is loaded."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise JtlError(f"run dir {run_dir} does not exist; pass a jtl run dir (the one holding "
                       ".hydra/config.yaml and checkpoints/)")
    rundir.load_config(run_dir)  # not a run dir: say so before looking for checkpoints
    run = runs.load_run(run_dir, resolve_step(run_dir, step))
    return LoadedRun(run.run_dir, run.cfg, run.model, run.source, run.target, run.method,
                     run.step)
