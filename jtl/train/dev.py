"""Label-free model selection: Deep Embedded Validation (DEV; You et al., ICML 2019).

A run that reads no target labels cannot select its evaluation by target accuracy; source
validation accuracy ignores the shift. DEV estimates the *target* risk from the labeled source
validation split, reweighted by the density ratio of the features f = backbone(x):

    w(x) = p_T(f) / p_S(f) = p(t | f) / p(s | f) * n_S / n_T,

where p(t | f) is a domain classifier (logistic regression on standardized features) trained
on n_S source-train and n_T target-train features (target x only, never labels). With the
per-example cross-entropies l_i of the source validation split and L_i = w_i l_i, the
control-variate estimate is (E[w] = 1 under the source distribution)

    eta  = -Cov(L, w) / Var(w)
    risk = mean(L) + eta * mean(w) - eta.

The domain classifier is fitted on one half of each train subsample and scored on the other:
its balanced held-out accuracy (`dev/domain_acc`, ~0.5 = aligned features, ~1 = separable) is
a label-free domain-confusion signal beside the risk. Importance weighting needs the target
to lie where source validation data lies: `dev/ess`, the weights' effective sample size as a
fraction of the validation sample (Kish: (sum w)^2 / (n sum w^2), 1 = equal weights), says
how many source examples the risk really rests on. On separable features (domain_acc ~1) it
falls to a few examples and the risk is noise: read it as "not aligned", not as a risk.

Every evaluation uses the same subsamples (drawn once, from the run seed), so values at
different steps are comparable and a resumed run recomputes them exactly. Nothing here enters
a run's config or identity: DEV is on whenever the method reads no target labels and the
domains have at least `MIN_EXAMPLES` examples per split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from jtl.domains import Domain

MIN_EXAMPLES = 50  # per split (source train, source val, target train); below it DEV is off
MAX_SAMPLES = 2000  # per split: bounds the cost of an evaluation
LOG_ODDS_CLIP = 30.0  # |log p(t|f)/p(s|f)| cap: keeps exp() finite on separable features
_STREAM = 0xDE5  # the DEV subsample's numpy stream, beside the run seed


def density_ratio(log_odds: np.ndarray, n_source: int, n_target: int) -> np.ndarray:
    """w = p(t|f)/p(s|f) * n_S/n_T = exp(z) * n_S/n_T, z = the classifier's log-odds of target
    (clipped to +-LOG_ODDS_CLIP); n_S/n_T undoes the class prior of the classifier's data."""
    z = np.clip(np.asarray(log_odds, np.float64), -LOG_ODDS_CLIP, LOG_ODDS_CLIP)
    return np.exp(z) * (n_source / n_target)


def importance_weighted_risk(losses: np.ndarray, weights: np.ndarray) -> float:
    """mean(w * l): unbiased for the target risk with exact weights, but high-variance."""
    return float(np.mean(np.asarray(weights, np.float64) * np.asarray(losses, np.float64)))


def dev_risk(losses: np.ndarray, weights: np.ndarray) -> float:
    """DEV's control-variate risk: with L = w l, eta = -Cov(L, w)/Var(w),
    risk = mean(L) + eta mean(w) - eta. Since E[w] = 1, the correction has mean 0 and eta is
    the coefficient that minimises the estimate's variance. Equal weights (Var(w) = 0): mean(L).
    """
    w = np.asarray(weights, np.float64)
    wl = w * np.asarray(losses, np.float64)
    var = float(np.var(w, ddof=1)) if len(w) > 1 else 0.0
    if not var > 0:
        return float(wl.mean())
    eta = -float(np.cov(wl, w, ddof=1)[0, 1]) / var
    return float(wl.mean() + eta * w.mean() - eta)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size as a fraction of n: (sum w)^2 / (n sum w^2) in (0, 1]."""
    w = np.asarray(weights, np.float64)
    return float(w.sum() ** 2 / (len(w) * np.sum(w**2)))


def domain_classifier(fs: np.ndarray, ft: np.ndarray, seed: int
                      ) -> tuple[Callable[[np.ndarray], np.ndarray], float, int, int]:
    """Logistic regression (target = 1) on the first half of source features `fs` and target
    features `ft`, scored on the second halves. Returns (log-odds of target for new features,
    balanced held-out accuracy, n_S and n_T it was fitted on)."""
    hs, ht = len(fs) // 2, len(ft) // 2
    x_fit = np.concatenate([fs[:hs], ft[:ht]]).astype(np.float64)
    y_fit = np.concatenate([np.zeros(hs), np.ones(ht)])
    scaler = StandardScaler().fit(x_fit)
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    clf.fit(scaler.transform(x_fit), y_fit)

    def log_odds(f: np.ndarray) -> np.ndarray:
        return clf.decision_function(scaler.transform(np.asarray(f, np.float64)))

    held_s, held_t = log_odds(fs[hs:]), log_odds(ft[ht:])
    acc = 0.5 * (float(np.mean(held_s <= 0)) + float(np.mean(held_t > 0)))
    return log_odds, acc, hs, ht


def dev_estimate(fs_train: np.ndarray, ft_train: np.ndarray, fs_val: np.ndarray,
                 val_losses: np.ndarray, seed: int) -> dict[str, float]:
    """DEV risk of the source-val losses, the domain classifier's held-out accuracy and the
    weights' effective sample size, from source-train, target-train and source-val features."""
    log_odds, acc, n_s, n_t = domain_classifier(fs_train, ft_train, seed)
    w = density_ratio(log_odds(fs_val), n_s, n_t)
    return {"dev/risk": dev_risk(val_losses, w), "dev/domain_acc": acc,
            "dev/ess": effective_sample_size(w)}


def make_dev(graphdef: nnx.GraphDef, source: Domain, target: Domain, seed: int,
             max_samples: int = MAX_SAMPLES, batch_size: int = 500
             ) -> Callable[[Any], dict[str, float]] | None:
    """`dev(params) -> {"dev/risk", "dev/domain_acc", "dev/ess"}` on fixed subsamples of source
    train, target train (x only) and source val; None when a split has < MIN_EXAMPLES."""
    splits = [source.train, target.train, source.val]
    if min(len(s) for s in splits) < MIN_EXAMPLES:
        return None
    rng = np.random.default_rng([seed, _STREAM])
    idx = [np.sort(rng.permutation(len(s))[:max_samples]) for s in splits]
    x = np.concatenate([s.take(i).x for s, i in zip(splits, idx, strict=True)])
    ends = np.cumsum([len(i) for i in idx])
    y_val = source.val.y[idx[2]]
    pad = -len(x) % batch_size
    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])

    @jax.jit
    def forward(params, xb):
        model = nnx.merge(graphdef, params)
        f = model.features(xb)
        return f, model.head(f)

    def dev(params: Any) -> dict[str, float]:
        out = [forward(params, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        feats = np.concatenate([np.asarray(f) for f, _ in out])[:ends[-1]]
        logits = np.concatenate([np.asarray(g) for _, g in out])[ends[1]:ends[2]]
        logits = logits.astype(np.float64)
        top = logits.max(1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(logits - top).sum(1))
        losses = lse - logits[np.arange(len(y_val)), y_val]
        fs, ft, fv = np.split(feats, ends[:2])
        return dev_estimate(fs, ft, fv, losses, seed)

    return dev
