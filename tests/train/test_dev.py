"""DEV (label-free model selection): the estimator on hand-made shifts, its control variate,
determinism, and the trainer writing DEV keys only for runs that read no target labels."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf

from jtl.train import train_and_evaluate
from jtl.train.build import build
from jtl.train.dev import (
    MIN_EXAMPLES,
    density_ratio,
    dev_estimate,
    dev_risk,
    effective_sample_size,
    importance_weighted_risk,
    make_dev,
)
from jtl.train.selection import select_dev

MU = 0.5  # target mean of the 1-d Gaussian shift: source N(0, 1), target N(MU, 1)


def loss_of(x: np.ndarray) -> np.ndarray:
    """A per-example loss growing with x, so the shift to larger x raises the risk."""
    return np.log1p(np.exp(x))


def true_target_risk() -> float:
    """E_{x ~ N(MU, 1)} loss(x) by quadrature on a fine grid."""
    x = np.linspace(MU - 12, MU + 12, 200_001)
    density = np.exp(-0.5 * (x - MU) ** 2) / np.sqrt(2 * np.pi)
    return float(np.sum(loss_of(x) * density) * (x[1] - x[0]))


def exact_weights(x: np.ndarray) -> np.ndarray:
    """p_T(x)/p_S(x) = exp(MU x - MU^2/2) for N(MU, 1) over N(0, 1)."""
    return np.exp(MU * x - MU**2 / 2)


def test_density_ratio_undoes_the_class_prior():
    # Log-odds 0 on a classifier fitted on 3x more source than target: p(t|f) = 1/2 there
    # means the target density is 3x the source's.
    np.testing.assert_allclose(density_ratio(np.zeros(4), 300, 100), 3.0)
    np.testing.assert_allclose(density_ratio(np.log([2.0, 0.5]), 100, 100), [2.0, 0.5])
    assert np.isfinite(density_ratio(np.array([1e4, -1e4]), 10, 10)).all()


def test_equal_distributions_give_the_plain_mean_loss():
    rng = np.random.default_rng(0)
    fs, ft, fv = (rng.normal(size=(n, 5)) for n in (2000, 500, 1000))
    losses = loss_of(fv[:, 0])
    out = dev_estimate(fs, ft, fv, losses, seed=0)
    assert out["dev/risk"] == pytest.approx(losses.mean(), abs=0.05)
    assert abs(out["dev/domain_acc"] - 0.5) < 0.07  # the classifier cannot tell them apart
    assert out["dev/ess"] > 0.8  # near-equal weights
    assert dev_risk(losses, np.ones_like(losses)) == pytest.approx(losses.mean())


def test_covariate_shift_estimate_matches_the_true_target_risk():
    rng = np.random.default_rng(1)
    xv = rng.normal(size=20_000)
    truth = true_target_risk()
    source_mean = float(loss_of(xv).mean())
    assert truth - source_mean > 0.15  # the shift matters: source validation is off
    # Exact weights: DEV is (asymptotically) unbiased.
    assert dev_risk(loss_of(xv), exact_weights(xv)) == pytest.approx(truth, abs=0.02)
    # Weights from the logistic-regression domain classifier (well specified here).
    fs, ft = rng.normal(size=(4000, 1)), rng.normal(MU, 1.0, size=(4000, 1))
    out = dev_estimate(fs, ft, xv[:, None], loss_of(xv), seed=0)
    assert out["dev/risk"] == pytest.approx(truth, abs=0.04)
    assert 0.55 < out["dev/domain_acc"] < 0.7  # N(0,1) vs N(0.5,1): Bayes accuracy ~0.60
    # ESS fraction -> 1 / E_S[w^2] = exp(-MU^2) for this shift.
    assert out["dev/ess"] == pytest.approx(np.exp(-MU**2), abs=0.05)


def test_effective_sample_size_counts_the_examples_that_carry_the_weight():
    assert effective_sample_size(np.full(10, 3.0)) == pytest.approx(1.0)
    assert effective_sample_size(np.r_[np.ones(2), np.zeros(8)]) == pytest.approx(0.2)
    assert effective_sample_size(np.r_[1e6, np.ones(999)]) < 0.002


def test_control_variate_reduces_variance():
    rng = np.random.default_rng(2)
    iwv, dev = [], []
    for _ in range(300):
        x = rng.normal(size=300)
        w, losses = exact_weights(x), loss_of(x)
        iwv.append(importance_weighted_risk(losses, w))
        dev.append(dev_risk(losses, w))
    truth = true_target_risk()
    assert np.mean(dev) == pytest.approx(truth, abs=0.02)
    assert np.std(dev) < 0.5 * np.std(iwv)


def test_select_dev_takes_lowest_risk_and_skips_rows_without_it():
    rows = [{"step": 10, "target/test/accuracy": 0.5, "dev/risk": 0.9},
            {"step": 20, "target/test/accuracy": 0.7, "dev/risk": 0.4, "dev/ess": 0.3},
            {"step": 30, "target/test/accuracy": 0.6, "dev/risk": 0.4},
            {"step": 40, "target/test/accuracy": 0.9, "dev/risk": float("nan")},
            {"step": 50, "train/loss": 0.1}]
    assert select_dev(rows) == {"selected/dev/step": 20, "selected/dev/ess": 0.3,
                                "selected/dev/target/test/accuracy": 0.7}
    assert select_dev([{"step": 10, "target/test/accuracy": 0.5}]) == {}


def test_make_dev_is_deterministic_and_needs_enough_examples(fast_cfg):
    cfg = OmegaConf.to_container(fast_cfg("method=dann"), resolve=True)
    source, target, _, net = build(cfg)
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    a = make_dev(graphdef, source, target, seed=0)(params)
    assert a == make_dev(graphdef, source, target, seed=0)(params)
    assert set(a) == {"dev/risk", "dev/domain_acc", "dev/ess"}
    assert np.isfinite(list(a.values())).all()
    assert a != make_dev(graphdef, source, target, seed=1, max_samples=200)(params)
    n = MIN_EXAMPLES - 1
    tiny = dataclasses.replace(source, val=source.val.take(np.arange(n)))
    assert make_dev(graphdef, tiny, target, seed=0) is None


def _rows(run_dir):
    return [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_trainer_writes_dev_only_without_target_labels(fast_cfg, tmp_path):
    s = train_and_evaluate(fast_cfg("method=dann"), tmp_path / "dann")
    evals = [r for r in _rows(tmp_path / "dann") if "target/test/accuracy" in r]
    assert evals and all({"dev/risk", "dev/domain_acc", "dev/ess"} <= set(r) for r in evals)
    best = min(evals, key=lambda r: (r["dev/risk"], r["step"]))
    assert s["selected/dev/step"] == best["step"]
    assert s["selected/dev/target/test/accuracy"] == best["target/test/accuracy"]
    assert s["selected/dev/ess"] == best["dev/ess"]
    assert s["dev/risk"] == evals[-1]["dev/risk"]
    assert 0.0 <= s["dev/domain_acc"] <= 1.0 and 0.0 < s["dev/ess"] <= 1.0

    s = train_and_evaluate(fast_cfg("method=target_only"), tmp_path / "target_only")
    assert not any(k.startswith(("dev/", "selected/dev/")) for k in s)
    assert not any(k.startswith("dev/") for r in _rows(tmp_path / "target_only") for k in r)
