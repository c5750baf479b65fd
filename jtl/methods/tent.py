"""TENT (Wang et al. 2021, "Tent: Fully Test-Time Adaptation by Entropy Minimization"):
the source model adapted to unlabeled target batches by minimising the entropy of its own
predictions, training only the BatchNorm layers' scale and shift.

    loss = (1/B) sum_i H(softmax(f(x_i))),   x_i target, H the prediction entropy

Source-free and label-free (`uses = {"target/x"}`): start from a source model
(`init_from=<run dir>` or `pretrain=`) with `source=null`. The step runs the network in
training mode, so every BatchNorm normalises with the target batch's statistics, as TENT's
`configure_model` forces; only parameters matching `trainable` (BatchNorm `scale`/`bias`;
checked against the network at step 0, so a GroupNorm `norm/scale` is refused) get gradient
steps. TENT's optimiser (Adam, lr 1e-3, beta 0.9, no weight decay; its `conf.py`) is the
run's `optim`: `optim=adam optim.lr=1e-3`.

Difference from TENT's code: TENT drops the running statistics and predicts with each test
batch's own statistics, also in evaluation. jtl evaluates in evaluation mode, so the
statistics a trained tent run is scored with are the running averages of the target batches'
statistics that the steps collected (momentum 0.1, PyTorch's), an AdaBN-like estimate. In the
online setting (`online:`, TENT's own protocol) the scored predictions are the step's, made
with the batch's statistics before its update, as in TENT.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from jtl.methods.base import METHODS, Boundary, Method
from jtl.methods.source_free import NORM_AFFINE, batch_norm_affine
from jtl.methods.transductive import entropy


@METHODS.register("tent")
@dataclasses.dataclass(frozen=True)
class Tent(Method):
    uses = frozenset({"target/x"})
    trainable: ClassVar[str | None] = NORM_AFFINE  # BatchNorm scale and shift only

    def init_state(self, params: Any, ctx: Boundary) -> Any:
        batch_norm_affine(ctx.graphdef, params, NORM_AFFINE, "tent")
        return None

    def loss(self, model, batch, key, progress):
        ent = entropy(model.head(model.features(batch["target"]["x"]))).mean()
        return ent, {"target_entropy": ent}
