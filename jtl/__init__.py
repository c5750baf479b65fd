"""jtl: transfer learning experiments in JAX.

Import `train_and_evaluate` from `jtl.train` to run one configured experiment from Python.
"""

__version__ = "0.1.0"
