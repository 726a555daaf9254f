"""Cluster maps: 2-D projections of latents (PCA, t-SNE, UMAP) and how well labels separate.

A map is only a picture; :func:`cluster_scores` gives the numbers behind it, computed in the
full latent space rather than in the projection: the silhouette of the labelled groups and the
cross-validated accuracy of a k-nearest-neighbour vote, next to the majority baseline.
Rendering lives in :mod:`lmvae.probes.plots` (PNG) and :mod:`lmvae.probes.html` (interactive).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .metrics.utils import as_float_array

__all__ = ["METHODS", "cluster_scores", "project"]

METHODS = ("pca", "tsne", "umap")


def _codes(codes: Any) -> np.ndarray:
    x = as_float_array(codes)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ConfigError(f"codes must be (N >= 3, D), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError("codes contain NaN or infinite values")
    return x


def project(codes: Any, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) coordinates of ``codes`` (N, D) by PCA, t-SNE or UMAP; deterministic in ``seed``.

    UMAP needs the ``umap-learn`` package (installed with lmvae); t-SNE's perplexity is capped
    at (N - 1) / 3 so that small sets work.
    """
    x = _codes(codes)
    if method not in METHODS:
        raise ConfigError(f"unknown projection {method!r}: use one of {', '.join(METHODS)}")
    if x.shape[1] < 2:
        return np.concatenate([x, np.zeros_like(x)], axis=1)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (x.shape[0] - 1) / 3))
        tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
        return tsne.fit_transform(x)
    try:
        import umap
    except ImportError:  # pragma: no cover - umap-learn is a dependency
        raise ConfigError("UMAP maps need the umap-learn package: pip install umap-learn") from None
    neighbours = int(min(15, x.shape[0] - 1))
    reducer = umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed, n_jobs=1)
    with warnings.catch_warnings():
        # Small or degenerate sets make UMAP fall back from its spectral initialisation, with a
        # warning that says nothing actionable to a probe user.
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def cluster_scores(codes: Any, labels: Sequence[Any], k: int = 5, seed: int = 0) -> dict:
    """How well ``labels`` group in latent space.

    Returns ``{"silhouette", "knn_accuracy", "majority_baseline", "n_classes", "n"}``:
    the silhouette (euclidean, in [-1, 1], about 0 for labels unrelated to the codes) and the
    5-fold cross-validated accuracy of a k-NN vote, which a label the codes ignore keeps near
    the majority baseline. Labels with a single member are left out of the silhouette.
    """
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    x = _codes(codes)
    y = np.asarray([str(v) for v in labels])
    if len(y) != len(x):
        raise ConfigError(f"{len(y)} labels for {len(x)} codes")
    counts = Counter(y.tolist())
    if len(counts) < 2:
        raise ConfigError("cluster scores need at least two different labels")
    keep = np.array([counts[v] >= 2 for v in y])
    xs, ys = x[keep], y[keep]
    silhouette = (
        float(silhouette_score(xs, ys, random_state=seed)) if len(set(ys)) >= 2 else float("nan")
    )
    folds = int(min(5, min(Counter(ys.tolist()).values())))
    if folds >= 2:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        knn = KNeighborsClassifier(n_neighbors=min(k, len(xs) - len(xs) // folds - 1))
        knn_accuracy = float(cross_val_score(knn, xs, ys, cv=cv).mean())
    else:
        knn_accuracy = float("nan")
    return {
        "silhouette": silhouette,
        "knn_accuracy": knn_accuracy,
        "majority_baseline": counts.most_common(1)[0][1] / len(y),
        "n_classes": len(counts),
        "n": len(y),
    }
