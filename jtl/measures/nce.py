"""NCE, the Negative Conditional Entropy (Tran et al., ICCV 2019).

With Z the source model's hard predictions on target inputs and Y the target labels, from the
empirical joint P(y, z) = #{i: y_i = y, z_i = z} / n:

    NCE = -H(Y | Z) = sum_{y,z} P(y, z) log (P(y, z) / P(z)).

It is 0 when Y is a function of Z (the source labelling determines the target one) and
-H(Y) when they are independent. Higher predicts better transfer.
"""

from __future__ import annotations

import numpy as np

from jtl.measures.base import MEASURES, MeasureContext, MeasureValues, as_labels, as_probs


def nce(source_labels: np.ndarray, target_labels: np.ndarray) -> float:
    """-H(Y|Z) in nats for hard source labels Z (N,) and target labels Y (N,)."""
    z = as_labels(source_labels, what="source labels")
    y = as_labels(target_labels, len(z), "target labels")
    joint = np.zeros((y.max() + 1, z.max() + 1))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(y)
    p_z = joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log((joint / p_z)[nz])))


@MEASURES.register("nce")
def nce_measure(ctx: MeasureContext) -> MeasureValues:
    """NCE of the source model's argmax predictions on target data."""
    probs, y = ctx.need("nce", "target_source_probs", "target_labels")
    return {"nce": nce(np.argmax(as_probs(probs), axis=1), y)}
