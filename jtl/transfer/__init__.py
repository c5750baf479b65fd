"""Inductive transfer: recipes (what a run loads, freezes and how each group learns) and the
pretraining cache (`pretrain=`: find or train, once, the run a transfer run starts from)."""

from jtl.transfer.recipes import Recipe, with_prototype_head

__all__ = ["Recipe", "with_prototype_head"]
