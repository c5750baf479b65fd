"""Models: a backbone (features) and a linear head, addressed by `backbone/...` and `head/...`."""

from jtl.models.base import MODELS, Backbone, Network, build_network, param_paths

__all__ = ["MODELS", "Backbone", "Network", "build_network", "param_paths"]
