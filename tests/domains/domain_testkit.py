"""Shared constants for the domain tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

from pathlib import Path

# The offline data sits beside the repository: <repo>/../shared/data (see its README.md).
DATA_DIR = (Path(__file__).resolve().parents[2] / "../shared/data").resolve()

# The keys every conf/domain/*.yaml carries, at their defaults.
COMMON = {"shifts": [], "per_class": None, "max_train": None, "val_fraction": 0.1,
          "split_seed": 0}
