"""The one trainer: `train_and_evaluate(cfg, workdir)` runs every method.

Imported lazily, so light modules of this package (`selection`, read by `jtl.report`) load
without JAX and the network code."""

from __future__ import annotations

from typing import Any

__all__ = ["train_and_evaluate"]


def __getattr__(name: str) -> Any:
    if name == "train_and_evaluate":
        from jtl.train.trainer import train_and_evaluate

        return train_and_evaluate
    raise AttributeError(f"module 'jtl.train' has no attribute {name!r}")
