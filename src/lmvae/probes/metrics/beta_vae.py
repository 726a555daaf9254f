"""beta-VAE metric (z-diff), data-driven variant.

Higgins et al. (2017), "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework" -- the paper that introduces this metric: a linear classifier must tell which factor
was held fixed from the mean absolute code difference of pairs sharing that factor.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .utils import FixedFactorSampler, check_codes_factors

__all__ = ["beta_vae"]


def beta_vae(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    batch_size: int = 64,
    n_train: int = 500,
    n_eval: int = 300,
    seed: int = 0,
) -> dict:
    """beta-VAE (z-diff) score of ``codes`` (n_samples, n_latents) w.r.t. discrete ``factors``.

    Without a simulator there are no interventions, so each metric point is drawn from the data
    (see :class:`~lmvae.probes.metrics.utils.FixedFactorSampler`): a factor ``k`` and a value
    ``v`` are chosen, ``batch_size`` pairs of distinct rows with factor ``k == v`` are drawn and
    ``z_diff = mean |z_a - z_b|`` over the pairs. A logistic regression (on standardised z_diff
    vectors) is fit on ``n_train`` points to predict ``k``; the score is its accuracy on
    ``n_eval`` fresh points. Deterministic given ``seed``. Chance level is
    ``1 / n_usable_factors`` (reported as ``"chance"``).

    Returns ``{"beta_vae", "train_accuracy", "eval_accuracy", "chance"}``.
    """
    codes, factors = check_codes_factors(codes, factors)
    if batch_size < 1 or n_train < 1 or n_eval < 1:
        raise ValueError("batch_size, n_train and n_eval must be positive")
    rng = np.random.default_rng(seed)
    sampler = FixedFactorSampler(factors)
    x_tr, y_tr = _points(codes, sampler, n_train, batch_size, rng)
    x_ev, y_ev = _points(codes, sampler, n_eval, batch_size, rng)
    if np.unique(y_tr).size < 2:
        pred_tr = np.full_like(y_tr, y_tr[0])
        pred_ev = np.full_like(y_ev, y_tr[0])
    else:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        clf.fit(x_tr, y_tr)
        pred_tr, pred_ev = clf.predict(x_tr), clf.predict(x_ev)
    train_acc = float(np.mean(pred_tr == y_tr))
    eval_acc = float(np.mean(pred_ev == y_ev))
    return {
        "beta_vae": eval_acc,
        "train_accuracy": train_acc,
        "eval_accuracy": eval_acc,
        "chance": 1.0 / len(sampler.factor_ids),
    }


def _points(
    codes: np.ndarray,
    sampler: FixedFactorSampler,
    n_points: int,
    batch_size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    x = np.empty((n_points, codes.shape[1]))
    y = np.empty(n_points, dtype=np.int64)
    for p in range(n_points):
        k, rows = sampler.sample(rng)
        m = rows.size
        a = rng.integers(m, size=batch_size)
        b = (a + rng.integers(1, m, size=batch_size)) % m  # a distinct partner for each a
        x[p] = np.mean(np.abs(codes[rows[a]] - codes[rows[b]]), axis=0)
        y[p] = k
    return x, y
