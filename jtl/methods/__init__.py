"""Transfer methods: each is a loss and the parameters it trains; the trainer runs them all."""

from jtl.methods.base import METHODS, Batch, Method, build_method, cross_entropy

__all__ = ["METHODS", "Batch", "Method", "build_method", "cross_entropy"]
