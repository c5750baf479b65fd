"""A run started from another run (`init_from` / `pretrain`) can read cached features when it
loads no backbone array from that run: the backbone is then `model.weights`' own (a
source-free run adapting the neck and head of a frozen-feature source run)."""

from __future__ import annotations

import numpy as np

from jtl.train.features import loads_backbone
from jtl.transfer import Recipe

PARAMS = {"backbone": {"blocks": {"0": {"kernel": np.zeros(2), "mean": np.zeros(2)}}},
          "neck": {"kernel": np.zeros(2)}, "head": {"kernel": np.zeros(2)}}


def test_only_a_load_that_reaches_backbone_arrays_counts():
    none = Recipe.from_cfg(None)
    assert loads_backbone({"init_from": "r"}, none, PARAMS)  # load '.*': everything
    assert not loads_backbone({"init_from": "r", "dont_load": "backbone/.*"}, none, PARAMS)
    assert not loads_backbone({"init_from": "r", "load": "(neck|head)/.*"}, none, PARAMS)
    # one backbone array still loaded (the BatchNorm statistics) is enough to refuse
    assert loads_backbone({"init_from": "r", "dont_load": "backbone/.*/kernel"}, none, PARAMS)
    assert not loads_backbone({"load": "head/.*"}, Recipe.from_cfg({"name": "finetune"}),
                              PARAMS)
