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
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from .metrics.utils import as_float_array

__all__ = ["METHODS", "Projection", "cluster_scores", "fit_projection", "nearest", "project"]

METHODS = ("pca", "tsne", "umap")


def _codes(codes: Any) -> np.ndarray:
    x = as_float_array(codes)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ConfigError(f"codes must be (N >= 3, D), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError("codes contain NaN or infinite values")
    return x


@dataclass
class Projection:
    """A fitted 2-D map: where the fitted codes lie, and where new codes fall on it."""

    method: str
    coords: np.ndarray  # (N, 2) positions of the fitted codes
    codes: np.ndarray  # (N, D) the fitted codes
    model: Any = None  # the fitted PCA / UMAP; None for t-SNE, which maps no new points

    def place(self, codes: Any, k: int = 5) -> np.ndarray:
        """(M, 2) positions of new codes (M, D): the fitted PCA or UMAP transform; t-SNE has
        none, so a new code goes to the distance-weighted mean of its k nearest fitted codes."""
        x = as_float_array(codes)
        if x.ndim != 2 or x.shape[1] != self.codes.shape[1] or not np.isfinite(x).all():
            raise ConfigError(f"codes to place must be finite (M, {self.codes.shape[1]}) arrays")
        if self.codes.shape[1] < 2:
            return np.concatenate([x, np.zeros_like(x)], axis=1)
        if self.model is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return np.asarray(self.model.transform(x), dtype=np.float64)
        index, dist = nearest(self.codes, x, k)
        weight = 1.0 / (dist + 1e-9)
        return (self.coords[index] * weight[..., None]).sum(1) / weight.sum(1, keepdims=True)


def fit_projection(codes: Any, method: str = "pca", seed: int = 0) -> Projection:
    """Fit a 2-D map of ``codes`` (N, D) by PCA, t-SNE or UMAP; deterministic in ``seed``.

    UMAP needs the ``umap-learn`` package (installed with lmvae); t-SNE's perplexity is capped
    at (N - 1) / 3 so that small sets work.
    """
    x = _codes(codes)
    if method not in METHODS:
        raise ConfigError(f"unknown projection {method!r}: use one of {', '.join(METHODS)}")
    if x.shape[1] < 2:
        return Projection(method, np.concatenate([x, np.zeros_like(x)], axis=1), x)
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        return Projection(method, pca.fit_transform(x), x, pca)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (x.shape[0] - 1) / 3))
        tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
        return Projection(method, tsne.fit_transform(x), x)
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
        coords = np.asarray(reducer.fit_transform(x), dtype=np.float64)
    return Projection(method, coords, x, reducer)


def project(codes: Any, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) coordinates of ``codes`` (N, D) by PCA, t-SNE or UMAP (:func:`fit_projection`)."""
    return fit_projection(codes, method, seed).coords


def nearest(codes: Any, queries: Any, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Indices and Euclidean distances (M, k) of the k codes (N, D) nearest each query (M, D),
    closest first; k is capped at N."""
    x, q = as_float_array(codes), as_float_array(queries)
    if x.ndim != 2 or q.ndim != 2 or x.shape[1] != q.shape[1] or len(x) == 0:
        raise ConfigError(
            f"nearest needs (N, D) codes and (M, D) queries, got {x.shape}, {q.shape}"
        )
    k = int(min(k, len(x)))
    dist = np.sqrt(np.maximum(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))  # (M, N)
    index = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return index, np.take_along_axis(dist, index, axis=1)


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
