"""LEEP, the Log Expected Empirical Prediction (Nguyen et al., ICML 2020).

From the source model's softmax theta(x_i) over source classes z and target labels y_i:

    P(y, z) = 1/n sum_{i: y_i = y} theta(x_i)_z        (empirical joint)
    P(y | z) = P(y, z) / sum_y' P(y', z)
    LEEP = 1/n sum_i log sum_z P(y_i | z) theta(x_i)_z

the average log-likelihood of the "expected empirical predictor" that re-labels source
predictions as target classes. Higher (closer to 0) predicts better transfer. With one-hot
theta (hard predictions) it reduces to NCE.
"""

from __future__ import annotations

import numpy as np

from jtl.measures.base import MEASURES, MeasureContext, MeasureValues, as_labels, as_probs


def leep(source_probs: np.ndarray, target_labels: np.ndarray) -> float:
    """LEEP score (<= 0) of source-model probabilities (N, C_s) for target labels (N,)."""
    theta = as_probs(source_probs)
    y = as_labels(target_labels, len(theta), "target labels")
    n = len(y)
    joint = np.zeros((y.max() + 1, theta.shape[1]))
    np.add.at(joint, y, theta)
    joint /= n
    marginal_z = joint.sum(0)
    # A source class that no sample puts mass on contributes 0 to every sum below.
    cond = np.divide(joint, marginal_z, out=np.zeros_like(joint), where=marginal_z > 0)
    eep = np.sum(cond[y] * theta, axis=1)
    return float(np.mean(np.log(eep)))


@MEASURES.register("leep")
def leep_measure(ctx: MeasureContext) -> MeasureValues:
    """LEEP of the source model's predictions on target data."""
    probs, y = ctx.need("leep", "target_source_probs", "target_labels")
    return {"leep": leep(probs, y)}
