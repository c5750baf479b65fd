"""Metrics to `metrics.jsonl` (what later tools read) and TensorBoard event files."""

from __future__ import annotations

import json
from pathlib import Path

from jtl import rundir


class MetricWriter:
    """Appends one row per log/eval step; on resume keeps only the rows up to the restored
    checkpoint, so a killed run's rows past it are written again, once."""

    def __init__(self, workdir: Path, resume_step: int, tensorboard: bool = True,
                 files: bool = True) -> None:
        """`files=False` (a non-primary process of a distributed run): rows in memory only."""
        self.path = workdir / rundir.METRICS if files else None
        self.rows = rundir.read_metrics(workdir, resume_step) if resume_step else []
        if self.path is not None:
            rundir.atomic_write_text(
                self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.rows))
        self.tb = None
        if tensorboard and files:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(str(workdir / "tb"), purge_step=resume_step or None)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **metrics}
        self.rows.append(row)
        if self.path is None:
            return
        with rundir.open_append(self.path) as f:  # never through a symlink
            f.write(json.dumps(row, sort_keys=True) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
