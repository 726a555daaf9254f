"""Modularity and explicitness.

Ridgeway & Mozer (2018), "Learning Deep Disentangled Embeddings with the F-Statistic Loss" --
the paper that defines modularity (each code depends on at most one factor) and explicitness
(factors are linearly decodable from the codes).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from .utils import check_codes_factors, discretize, mutual_info_matrix, train_test_indices

__all__ = ["modularity", "modularity_from_mi"]


def modularity_from_mi(mi: np.ndarray) -> np.ndarray:
    """Per-code modularity from a (n_latents, n_factors) mutual-information matrix.

    ``1 - sum_{k != k*} (m_k / m_k*)^2 / (n_factors - 1)``; a code with zero MI to every factor
    scores 0 (as in disentanglement_lib). Needs >= 2 factors.
    """
    mi = np.asarray(mi, dtype=np.float64)
    if mi.ndim != 2 or mi.shape[1] < 2:
        raise ValueError(f"mi must be (n_latents, n_factors>=2), got shape {mi.shape}")
    sq = np.square(mi)
    top = sq.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (sq.sum(axis=1) - top) / (top * (mi.shape[1] - 1))
    score = 1.0 - delta
    score[top == 0.0] = 0.0
    return score


def modularity(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    n_bins: int = 20,
    explicitness: bool = True,
    test_size: float = 0.3,
    seed: int = 0,
) -> dict:
    """Modularity (MI-based) and, optionally, explicitness of ``codes`` w.r.t. ``factors``.

    Modularity: histogram-discretised codes, MI matrix, per-code score from
    :func:`modularity_from_mi`, averaged uniformly over *all* codes (as in the paper); pure-noise
    dims therefore pull the mean down -- see ``modularity_per_code``.
    Explicitness: per factor, a multinomial logistic regression on standardised codes (fit on a
    seeded train split), mean one-vs-rest ROC-AUC on the test split over the factor's values
    present there; averaged over factors.

    Returns ``{"modularity", "modularity_per_code", ["explicitness",
    "explicitness_per_factor"]}``.
    """
    codes, factors = check_codes_factors(codes, factors)
    if factors.shape[1] < 2:
        raise ValueError("modularity needs at least 2 factors")
    per_code = modularity_from_mi(mutual_info_matrix(discretize(codes, n_bins), factors))
    out: dict = {
        "modularity": float(np.mean(per_code)),
        "modularity_per_code": [float(x) for x in per_code],
    }
    if explicitness:
        per_factor = _explicitness(codes, factors, test_size, np.random.default_rng(seed))
        out["explicitness"] = float(np.mean(per_factor))
        out["explicitness_per_factor"] = [float(x) for x in per_factor]
    return out


def _explicitness(
    codes: np.ndarray, factors: np.ndarray, test_size: float, rng: np.random.Generator
) -> list[float]:
    tr, te = train_test_indices(codes.shape[0], test_size, rng)
    scaler = StandardScaler().fit(codes[tr])
    x_tr, x_te = scaler.transform(codes[tr]), scaler.transform(codes[te])
    scores = []
    for k in range(factors.shape[1]):
        y_tr, y_te = factors[tr, k], factors[te, k]
        if np.unique(y_tr).size < 2:
            scores.append(0.5)  # nothing to learn from: chance AUC
            continue
        clf = LogisticRegression(max_iter=1000).fit(x_tr, y_tr)
        proba = clf.predict_proba(x_te)
        aucs = []
        for c_idx, c in enumerate(clf.classes_):
            pos = y_te == c
            if pos.any() and not pos.all():
                aucs.append(roc_auc_score(pos, proba[:, c_idx]))
        scores.append(float(np.mean(aucs)) if aucs else 0.5)
    return scores
