"""Linguistic-properties probe: which sentence properties can a simple classifier read from z?

Each property (length bucket, template or construction, presence of a semantic role, or any
label the user supplies) gets a linear classifier from latents to labels, scored by
cross-validated accuracy next to the majority baseline. A property the latent space does not
encode stays at the baseline; one it encodes linearly comes close to 1 (Conneau et al., 2018,
"What you can cram into a single vector", for the probing-task methodology).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .metrics.utils import as_float_array

__all__ = ["LENGTH_EDGES", "length_bucket", "probe_properties", "sentence_properties"]

#: Word-count bucket edges: a sentence of w words falls in the first bucket whose edge >= w.
LENGTH_EDGES: tuple[int, ...] = (5, 7, 9)


def length_bucket(n_words: int, edges: Sequence[int] = LENGTH_EDGES) -> str:
    """``"<=5"``, ``"6-7"``, ``"8-9"``, ``">=10"`` for the default edges."""
    lower = 1
    for i, edge in enumerate(edges):
        if n_words <= edge:
            return f"<={edge}" if i == 0 else (f"{lower}-{edge}" if lower < edge else f"{edge}")
        lower = edge + 1
    return f">={lower}"


def sentence_properties(
    texts: Sequence[str],
    role_labels: Sequence[Sequence[str]] | None = None,
    labels: Mapping[str, Sequence[Any]] | None = None,
    length_edges: Sequence[int] = LENGTH_EDGES,
) -> dict[str, list[str]]:
    """Properties of each sentence, as ``{name: [label per sentence]}``.

    Always ``length`` (word-count bucket). With per-word ``role_labels`` (one label per
    whitespace word), ``has_<ROLE>`` = ``"yes"``/``"no"`` for each role that some but not all
    sentences contain. ``labels`` adds user properties (e.g. ``{"template": [...]}``).
    """
    n = len(texts)
    props: dict[str, list[str]] = {
        "length": [length_bucket(len(t.split()), length_edges) for t in texts]
    }
    if role_labels is not None:
        if len(role_labels) != n:
            raise ConfigError(f"{len(role_labels)} role-label rows for {n} sentences")
        present = [set(row) for row in role_labels]
        counts = Counter(role for row in present for role in row)
        for role in sorted(r for r, c in counts.items() if 0 < c < n):
            props[f"has_{role}"] = ["yes" if role in row else "no" for row in present]
    for name, values in (labels or {}).items():
        if len(values) != n:
            raise ConfigError(f"property {name!r} has {len(values)} labels for {n} sentences")
        props[str(name)] = [str(v) for v in values]
    return props


def probe_properties(
    codes: Any,
    properties: Mapping[str, Sequence[Any]],
    folds: int = 5,
    seed: int = 0,
) -> dict[str, dict]:
    """Cross-validated accuracy of a logistic regression from ``codes`` (N, D) to each property.

    Returns ``{name: {"accuracy", "accuracy_std", "majority_baseline", "n_classes", "n"}}``;
    labels with a single member are pooled as ``"(rare)"`` (a lone one is left out, ``n`` says
    how many rows were scored); a property with fewer than two usable labels gets
    ``{"skipped": reason}``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = as_float_array(codes)
    if x.ndim != 2:
        raise ConfigError(f"codes must be (N, D), got shape {x.shape}")
    results: dict[str, dict] = {}
    for name, values in properties.items():
        y = np.asarray([str(v) for v in values])
        if len(y) != len(x):
            raise ConfigError(f"property {name!r} has {len(y)} labels for {len(x)} codes")
        counts = Counter(y.tolist())
        if len(counts) < 2:
            results[name] = {"skipped": "a single label"}
            continue
        if min(counts.values()) < 2:
            # Labels with one member cannot be cross-validated: pool them as "(rare)", and drop
            # that row too if it is alone.
            y = np.asarray([v if counts[v] >= 2 else "(rare)" for v in y])
            counts = Counter(y.tolist())
        keep = np.asarray([counts[v] >= 2 for v in y])
        xk, y = x[keep], y[keep]
        counts = Counter(y.tolist())
        if len(counts) < 2:
            results[name] = {"skipped": "too few sentences per label"}
            continue
        k = min(folds, min(counts.values()))
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        cv = StratifiedKFold(k, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_val_score(model, xk, y, cv=cv)
        results[name] = {
            "accuracy": float(scores.mean()),
            "accuracy_std": float(scores.std()),
            "majority_baseline": counts.most_common(1)[0][1] / len(y),
            "n_classes": len(counts),
            "n": len(y),
        }
    return results
