"""DCI: Disentanglement, Completeness, Informativeness.

Eastwood & Williams (2018), "A Framework for the Quantitative Evaluation of Disentangled
Representations" -- the paper that defines the three scores from a predictor importance matrix.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from .utils import check_codes_factors, train_test_indices

__all__ = ["dci", "dci_from_importance"]

_EPS = 1e-11


def dci_from_importance(importance: np.ndarray) -> dict:
    """Disentanglement and completeness from a (n_latents, n_factors) importance matrix R.

    disentanglement = sum_i rho_i (1 - H_K(P_i.)), rho_i = sum_k R_ik / sum R;
    completeness = sum_k rho_k (1 - H_D(P_.k)), entropies in base n_factors / n_latents.
    """
    r = np.abs(np.asarray(importance, dtype=np.float64))
    if r.ndim != 2:
        raise ValueError(f"importance must be 2-D (n_latents, n_factors), got shape {r.shape}")
    n_latents, n_factors = r.shape
    if n_factors > 1:
        d_per_code = 1.0 - scipy.stats.entropy(r.T + _EPS, base=n_factors)
    else:
        d_per_code = np.ones(n_latents)
    if n_latents > 1:
        c_per_factor = 1.0 - scipy.stats.entropy(r + _EPS, base=n_latents)
    else:
        c_per_factor = np.ones(n_factors)
    w = r if r.sum() > 0 else np.ones_like(r)
    code_w = w.sum(axis=1) / w.sum()
    factor_w = w.sum(axis=0) / w.sum()
    return {
        "disentanglement": float(np.sum(d_per_code * code_w)),
        "completeness": float(np.sum(c_per_factor * factor_w)),
        "disentanglement_per_code": [float(x) for x in d_per_code],
        "completeness_per_factor": [float(x) for x in c_per_factor],
    }


def dci(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    model: str = "gbt",
    n_estimators: int = 20,
    max_depth: int = 3,
    C: float = 0.1,
    test_size: float = 0.3,
    seed: int = 0,
) -> dict:
    """DCI scores of ``codes`` (n_samples, n_latents) w.r.t. discrete ``factors``.

    One classifier per factor is fit on a seeded train split: ``model="gbt"`` (default,
    ``GradientBoostingClassifier`` with ``n_estimators``/``max_depth``; importances are the
    impurity-based ``feature_importances_``), or ``model="lasso"`` (L1 logistic regression on
    standardised codes with inverse strength ``C``; importance of a latent = mean |coef| over
    classes). Informativeness is the mean test accuracy over factors.

    Returns ``{"disentanglement", "completeness", "informativeness", "informativeness_train",
    "disentanglement_per_code", "completeness_per_factor", "informativeness_per_factor",
    "importance_matrix"}`` (the matrix as nested lists, latents x factors).
    """
    if model not in ("gbt", "lasso"):
        raise ValueError(f"model must be 'gbt' or 'lasso', got {model!r}")
    codes, factors = check_codes_factors(codes, factors)
    rng = np.random.default_rng(seed)
    tr, te = train_test_indices(codes.shape[0], test_size, rng)
    x_tr, x_te = codes[tr], codes[te]
    if model == "lasso":
        scaler = StandardScaler().fit(x_tr)
        x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    n_latents, n_factors = codes.shape[1], factors.shape[1]
    importance = np.zeros((n_latents, n_factors))
    acc_tr, acc_te = [], []
    for k in range(n_factors):
        y_tr, y_te = factors[tr, k], factors[te, k]
        if np.unique(y_tr).size < 2:  # only one value in the train split: nothing to learn
            acc_tr.append(1.0)
            acc_te.append(float(np.mean(y_te == y_tr[0])))
            continue
        sub_seed = int(rng.integers(2**31 - 1))
        if model == "gbt":
            clf = GradientBoostingClassifier(
                n_estimators=n_estimators, max_depth=max_depth, random_state=sub_seed
            ).fit(x_tr, y_tr)
            importance[:, k] = np.abs(clf.feature_importances_)
        else:
            clf = LogisticRegression(
                l1_ratio=1.0, C=C, solver="saga", max_iter=2000, random_state=sub_seed
            ).fit(x_tr, y_tr)
            importance[:, k] = np.abs(clf.coef_).mean(axis=0)
        acc_tr.append(float(np.mean(clf.predict(x_tr) == y_tr)))
        acc_te.append(float(np.mean(clf.predict(x_te) == y_te)))
    out = dci_from_importance(importance)
    return {
        "disentanglement": out["disentanglement"],
        "completeness": out["completeness"],
        "informativeness": float(np.mean(acc_te)),
        "informativeness_train": float(np.mean(acc_tr)),
        "disentanglement_per_code": out["disentanglement_per_code"],
        "completeness_per_factor": out["completeness_per_factor"],
        "informativeness_per_factor": acc_te,
        "importance_matrix": importance.tolist(),
    }
