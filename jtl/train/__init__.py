"""The one trainer: `train_and_evaluate(cfg, workdir)` runs every method."""

from jtl.train.trainer import train_and_evaluate

__all__ = ["train_and_evaluate"]
