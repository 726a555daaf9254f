"""Shared helpers for the disentanglement metrics: input checks, label encoding, binning, MI.

Layout is samples-first everywhere: ``codes`` is ``(n_samples, n_latents)`` and ``factors`` is
``(n_samples, n_factors)`` (the transpose of google-research/disentanglement_lib). All
information quantities are in nats.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score

__all__ = [
    "check_codes_factors",
    "discrete_entropy",
    "discretize",
    "encode_factors",
    "entropy",
    "FixedFactorSampler",
    "mutual_info_matrix",
    "train_test_indices",
]


def as_float_array(values) -> np.ndarray:
    """A float64 NumPy copy of a torch tensor (any device, with or without grad) or array-like."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def encode_factors(factors: np.ndarray) -> np.ndarray:
    """Label-encode every column of ``factors`` independently to ints ``0..n_values-1``.

    Works for ints, floats that are labels, strings or objects (anything ``np.unique`` sorts).
    """
    factors = np.asarray(factors)
    if factors.ndim != 2:
        raise ValueError(f"factors must be 2-D (n_samples, n_factors), got shape {factors.shape}")
    out = np.empty(factors.shape, dtype=np.int64)
    for j in range(factors.shape[1]):
        _, out[:, j] = np.unique(factors[:, j], return_inverse=True)
    return out


def check_codes_factors(
    codes: np.ndarray, factors: np.ndarray, *, min_latents: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (codes, factors) pair; return ``(codes as float64, label-encoded factors)``.

    Raises ValueError (one line) for non-2-D inputs, mismatched row counts, too few rows or
    latents, non-finite codes, and constant factors (a factor with a single value carries no
    information, so every metric below would divide by its zero entropy).
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (n_samples, n_latents), got shape {codes.shape}")
    if not np.issubdtype(codes.dtype, np.number) or np.issubdtype(codes.dtype, np.complexfloating):
        raise ValueError(f"codes must be a real numeric array, got dtype {codes.dtype}")
    codes = codes.astype(np.float64, copy=False)
    factors_arr = np.asarray(factors)
    if factors_arr.ndim != 2:
        raise ValueError(
            f"factors must be 2-D (n_samples, n_factors), got shape {factors_arr.shape}"
        )
    if codes.shape[0] != factors_arr.shape[0]:
        raise ValueError(f"codes has {codes.shape[0]} rows but factors has {factors_arr.shape[0]}")
    if codes.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got {codes.shape[0]}")
    if codes.shape[1] < min_latents:
        raise ValueError(f"need at least {min_latents} latent dims, got {codes.shape[1]}")
    if factors_arr.shape[1] < 1:
        raise ValueError("factors has no columns")
    if not np.all(np.isfinite(codes)):
        raise ValueError("codes contains NaN or infinite values")
    encoded = encode_factors(factors_arr)
    constant = [j for j in range(encoded.shape[1]) if encoded[:, j].max() == 0]
    if constant:
        raise ValueError(f"factor column(s) {constant} are constant (a single value); drop them")
    return codes, encoded


def discretize(codes: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Bin every column of ``codes`` into ``n_bins`` equal-width bins over its own range.

    Returns ints in ``0..n_bins-1`` with the same shape (as ``_histogram_discretize`` in
    disentanglement_lib, but zero-based). A constant column lands in a single bin.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (n_samples, n_latents), got shape {codes.shape}")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, i], bins=int(n_bins))
        out[:, i] = np.digitize(codes[:, i], edges[1:-1])
    return out


def mutual_info_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``M[i, j] = I(a[:, i]; b[:, j])`` in nats for two discrete (label) 2-D arrays."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"expected 2-D arrays, got shapes {a.shape} and {b.shape}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"first array has {a.shape[0]} rows but second has {b.shape[0]}")
    m = np.empty((a.shape[1], b.shape[1]))
    for i in range(a.shape[1]):
        for j in range(b.shape[1]):
            m[i, j] = mutual_info_score(a[:, i], b[:, j])
    return np.maximum(m, 0.0)  # clip tiny negative round-off


def entropy(labels: np.ndarray) -> float:
    """Plug-in Shannon entropy (nats) of a 1-D array of discrete labels."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def discrete_entropy(labels: np.ndarray) -> np.ndarray:
    """Entropy (nats) of every column of a 2-D array of discrete labels."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    return np.array([entropy(labels[:, j]) for j in range(labels.shape[1])])


def train_test_indices(
    n: int, test_size: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)``; both parts are non-empty."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    perm = rng.permutation(n)
    n_test = min(max(1, int(round(n * test_size))), n - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


class FixedFactorSampler:
    """Draws "fix one factor, vary the others" groups from observational data.

    ``sample(rng)`` picks a factor ``k`` uniformly among the factors that have at least one value
    shared by >= 2 rows, then a value ``v`` of it with probability proportional to its row count
    (values with < 2 rows are skipped), and returns ``(k, rows)`` with ``rows`` the indices of all
    rows where factor ``k == v``. The other factors vary as they do in the data.
    """

    def __init__(self, factors: np.ndarray) -> None:
        factors = np.asarray(factors)
        self._groups: list[list[np.ndarray]] = []
        self._probs: list[np.ndarray] = []
        self.factor_ids: list[int] = []
        for k in range(factors.shape[1]):
            values, inverse, counts = np.unique(
                factors[:, k], return_inverse=True, return_counts=True
            )
            keep = np.flatnonzero(counts >= 2)
            if keep.size == 0:
                continue
            order = np.argsort(inverse, kind="stable")
            splits = np.split(order, np.cumsum(counts)[:-1])
            self._groups.append([splits[i] for i in keep])
            self._probs.append(counts[keep] / counts[keep].sum())
            self.factor_ids.append(k)
        if not self.factor_ids:
            raise ValueError("no factor has a value shared by at least 2 rows")

    def sample(self, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        j = int(rng.integers(len(self.factor_ids)))
        g = int(rng.choice(len(self._groups[j]), p=self._probs[j]))
        return self.factor_ids[j], self._groups[j][g]
