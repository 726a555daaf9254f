"""Separated Attribute Predictability (SAP).

Kumar, Sattigeri & Balakrishnan (2018), "Variational Inference of Disentangled Latent Concepts
from Unlabeled Observations" -- the paper that defines SAP as the gap in single-latent
predictability of each factor between its best and second-best latent.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from .utils import check_codes_factors, train_test_indices

__all__ = ["sap", "sap_from_scores"]


def sap_from_scores(scores: np.ndarray) -> np.ndarray:
    """Per-factor gap between the top two entries of each column of a (n_latents, n_factors)
    score matrix."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] < 2:
        raise ValueError(f"scores must be (n_latents>=2, n_factors), got shape {scores.shape}")
    top = np.sort(scores, axis=0)
    return top[-1] - top[-2]


def sap(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    classifier: str = "threshold",
    test_size: float = 0.3,
    seed: int = 0,
) -> dict:
    """SAP score of ``codes`` (n_samples, n_latents) w.r.t. discrete ``factors``.

    For every (latent i, factor k) a 1-D classifier predicts factor k from latent i alone on a
    seeded train split; its test accuracy fills the score matrix. ``classifier="threshold"``
    (default) is a depth-limited decision tree on the single latent, i.e. a set of thresholds
    (at most ``2 * n_values`` intervals), which can isolate every value of an ordinal factor;
    ``classifier="linear_svc"`` reproduces disentanglement_lib (``LinearSVC(C=0.01,
    class_weight="balanced")``), which in 1-D can only separate the extreme values. SAP is the
    mean over factors of the gap between the best and second-best latent. Needs >= 2 latents.

    Returns ``{"sap", "sap_per_factor", "score_matrix"}`` (matrix latents x factors).
    """
    if classifier not in ("threshold", "linear_svc"):
        raise ValueError(f"classifier must be 'threshold' or 'linear_svc', got {classifier!r}")
    codes, factors = check_codes_factors(codes, factors, min_latents=2)
    rng = np.random.default_rng(seed)
    tr, te = train_test_indices(codes.shape[0], test_size, rng)
    n_latents, n_factors = codes.shape[1], factors.shape[1]
    scores = np.zeros((n_latents, n_factors))
    for k in range(n_factors):
        y_tr, y_te = factors[tr, k], factors[te, k]
        n_values = np.unique(y_tr).size
        for i in range(n_latents):
            x_tr, x_te = codes[tr, i : i + 1], codes[te, i : i + 1]
            if n_values < 2:
                pred = np.full(y_te.shape, y_tr[0])
            elif classifier == "threshold":
                clf = DecisionTreeClassifier(
                    max_leaf_nodes=2 * n_values, min_samples_leaf=5, random_state=0
                )
                pred = clf.fit(x_tr, y_tr).predict(x_te)
            else:
                clf = LinearSVC(C=0.01, class_weight="balanced")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    pred = clf.fit(x_tr, y_tr).predict(x_te)
            scores[i, k] = np.mean(pred == y_te)
    per_factor = sap_from_scores(scores)
    return {
        "sap": float(np.mean(per_factor)),
        "sap_per_factor": [float(x) for x in per_factor],
        "score_matrix": scores.tolist(),
    }
