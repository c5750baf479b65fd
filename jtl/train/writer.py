"""Metrics to `metrics.jsonl` (what later tools read) and TensorBoard event files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write to a temp file then rename, so a crash never leaves half a JSON file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class MetricWriter:
    def __init__(self, workdir: Path, resume_step: int, tensorboard: bool = True) -> None:
        self.path = workdir / "metrics.jsonl"
        self.rows = self._load(resume_step)
        with open(self.path, "w") as f:  # drop rows a killed run logged past its checkpoint
            f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in self.rows)
        self.tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(str(workdir / "tb"), purge_step=resume_step or None)

    def _load(self, resume_step: int) -> list[dict]:
        if not self.path.exists() or resume_step == 0:
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if row.get("step", 0) <= resume_step:
                rows.append(row)
        return rows

    def write(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **metrics}
        self.rows.append(row)
        with open(self.path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
