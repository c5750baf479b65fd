"""DAN (Long et al. 2015): minimise the multi-kernel MMD between source and target features.

    loss = CE(source) + weight * (MKMMD_u^2(f_s, f_t) [+ MKMMD_u^2(logits_s, logits_t)])

MK-MMD is the unbiased multi-Gaussian-kernel estimate of `jtl.discrepancy` (kernel_num
bandwidths spaced by kernel_mul around the mean pairwise distance). DAN adapts several
task-specific layers; `on_logits: true` adds the classifier output layer to the backbone
features. The unbiased estimate can dip slightly below 0 (it is 0 in expectation when the
domains match), so the loss is not clipped.
"""

from __future__ import annotations

import dataclasses

from jtl.discrepancy import mk_mmd
from jtl.errors import JtlError
from jtl.methods.base import METHODS
from jtl.methods.transductive import Transductive


@METHODS.register("mmd")
@dataclasses.dataclass(frozen=True)
class MMD(Transductive):
    kernel_mul: float = 2.0
    kernel_num: int = 5
    on_logits: bool = False

    def aligns(self) -> str | None:
        return None if self.on_logits else "features"

    def __post_init__(self) -> None:
        if self.kernel_num < 1 or self.kernel_mul <= 0:
            raise JtlError(
                f"method.kernel_num must be >= 1 and method.kernel_mul > 0, "
                f"got {self.kernel_num} and {self.kernel_mul}"
            )

    def adaptation(self, model, out, key, progress):
        metrics = {"mmd_features": mk_mmd(out.f_s, out.f_t, self.kernel_mul, self.kernel_num)}
        if self.on_logits:
            metrics["mmd_logits"] = mk_mmd(
                out.logits_s, out.logits_t, self.kernel_mul, self.kernel_num
            )
        total = sum(metrics.values())
        return self.weight * total, {**metrics, "mmd_loss": total}
