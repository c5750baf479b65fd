"""The trainer warns when a feature-alignment method has nothing trainable under the features
(DANN on a frozen backbone with no neck equals source_only: a protocol flaw found by hand in
experiments/amazon_minilm)."""

import logging

import numpy as np
import pytest

from jtl.methods import build_method
from jtl.train.checks import warn_unaligned

P = {"backbone": {"conv": {"kernel": np.zeros(2)}, "bn": {"mean": np.zeros(2)}},
     "head": {"kernel": np.zeros(2)}, "disc": {"kernel": np.zeros(2)}}
NECK = {**P, "neck": {"kernel": np.zeros(2)}}
FROZEN = "backbone/.*"  # feature_extractor's freeze


@pytest.mark.parametrize("method", [{"name": "dann"}, {"name": "cdan"}, {"name": "mmd"},
                                    {"name": "coral", "layer": "features"}, {"name": "dg_mmd"},
                                    {"name": "dg_dann"}])
def test_feature_alignment_on_frozen_features_warns(method, caplog):
    m = build_method(method)
    with caplog.at_level(logging.WARNING, logger="jtl"):
        assert warn_unaligned(method["name"], m, P, m.trainable, FROZEN, ())
    assert f"method={method['name']} aligns the features" in caplog.text
    # a trainable neck, or a backbone that trains, gives the term something to move
    assert not warn_unaligned(method["name"], m, NECK, m.trainable, FROZEN, ())
    assert not warn_unaligned(method["name"], m, P, m.trainable, None, ())
    # batch-norm statistics are state, not parameters: they do not count as trainable
    assert warn_unaligned(method["name"], m, P, m.trainable, "backbone/conv/.*",
                          {"backbone/bn/mean"})


@pytest.mark.parametrize("method", [{"name": "source_only"}, {"name": "mcc"},
                                    {"name": "coral"}, {"name": "mmd", "on_logits": True}])
def test_methods_that_reach_the_head_do_not_warn(method, caplog):
    """MCC and logit CORAL/MMD act on the head's output, which trains on frozen features."""
    m = build_method(method)
    with caplog.at_level(logging.WARNING, logger="jtl"):
        assert not warn_unaligned(method["name"], m, P, m.trainable, FROZEN, ())
    assert "aligns the features" not in caplog.text
