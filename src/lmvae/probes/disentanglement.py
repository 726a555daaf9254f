"""Disentanglement of a trained latent space against generative factors read from annotations.

Text has no simulator that varies one factor at a time, so the factors come from labels: for
each semantic role, the words that fill it (``ARG0 = "a small goat"``, ``V = "needs"``; ``-``
when the sentence lacks the role), plus any per-sentence label such as the template family.
The six metrics of :mod:`lmvae.probes.metrics` then score the posterior means against them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .metrics import beta_vae, dci, factor_vae, mig, modularity, sap
from .metrics.utils import as_float_array

__all__ = ["METRICS", "cap_values", "disentanglement", "factor_matrix", "role_factors"]

#: Metric name -> function(codes, factors, seed=...) -> dict; the headline key is the name.
METRICS: dict[str, Callable[..., dict]] = {
    "z_diff": beta_vae,
    "z_min_var": factor_vae,
    "mig": mig,
    "dci": dci,
    "sap": sap,
    "modularity": modularity,
}

_HEADLINE = {
    "z_diff": ["beta_vae"],
    "z_min_var": ["factor_vae"],
    "mig": ["mig"],
    "dci": ["disentanglement", "completeness", "informativeness"],
    "sap": ["sap"],
    "modularity": ["modularity", "explicitness"],
}

ABSENT = "-"
OTHER = "(other)"


def role_factors(
    roles: Sequence[Sequence[str]],
    texts: Sequence[str],
    min_count: int = 5,
    max_values: int = 20,
    min_presence: float = 0.1,
) -> dict[str, list[str]]:
    """One categorical factor per semantic role: the words labelled with it in each sentence.

    Roles present in fewer than ``min_presence`` of the sentences are left out (they would be
    a near-constant factor). Fillers seen fewer than ``min_count`` times, and beyond the
    ``max_values`` most frequent, are merged into ``"(other)"``, which keeps every factor
    learnable and the classifier-based metrics fast. ``O`` (outside any role) is not a factor.
    """
    if len(roles) != len(texts):
        raise ConfigError(f"{len(roles)} rows of role labels for {len(texts)} sentences")
    fillers: list[dict[str, str]] = []
    for text, row in zip(texts, roles, strict=True):
        words = text.split()
        if len(words) != len(row):
            raise ConfigError(f"{len(row)} role labels for {len(words)} words: {text!r}")
        spans: dict[str, list[str]] = {}
        for word, role in zip(words, row, strict=True):
            spans.setdefault(role, []).append(word)
        fillers.append({role: " ".join(ws) for role, ws in spans.items()})
    presence = Counter(role for f in fillers for role in f)
    factors: dict[str, list[str]] = {}
    for role in sorted(presence):
        if role == "O" or presence[role] < min_presence * len(texts):
            continue
        values = [f.get(role, ABSENT) for f in fillers]
        factors[role] = cap_values(values, min_count, max_values)
    return {k: v for k, v in factors.items() if len(set(v)) >= 2}


def cap_values(values: Sequence[str], min_count: int = 5, max_values: int = 20) -> list[str]:
    """Values seen fewer than ``min_count`` times, or beyond the ``max_values`` most frequent,
    become ``"(other)"``; ``"-"`` (role absent) is always kept."""
    counts = Counter(values)
    keep = {v for v, c in counts.most_common(max_values) if c >= min_count} | {ABSENT}
    return [v if v in keep else OTHER for v in values]


def factor_matrix(factors: Mapping[str, Sequence[Any]]) -> tuple[list[str], np.ndarray]:
    """Factor names and an (N, K) integer matrix, each column's labels numbered by first sight."""
    if not factors:
        raise ConfigError("no generative factors: give role labels or sentence labels")
    names = list(factors)
    lengths = {len(v) for v in factors.values()}
    if len(lengths) != 1:
        raise ConfigError(f"factors have different lengths: {sorted(lengths)}")
    columns = []
    for name in names:
        index: dict[str, int] = {}
        columns.append([index.setdefault(str(v), len(index)) for v in factors[name]])
    return names, np.asarray(columns, dtype=np.int64).T


def disentanglement(
    codes: Any,
    factors: Mapping[str, Sequence[Any]],
    metrics: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Score ``codes`` (N, D) against named ``factors`` with each of ``metrics`` (default all).

    Returns ``{"factors": names, "scores": {headline: value}, "details": {metric: result}}``;
    ``scores`` flattens each metric's headline figures (``beta_vae``, ``factor_vae``, ``mig``,
    ``disentanglement``, ``completeness``, ``informativeness``, ``sap``, ``modularity``,
    ``explicitness``).
    """
    codes = as_float_array(codes)
    names, matrix = factor_matrix(factors)
    chosen = list(METRICS) if metrics is None else list(metrics)
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}: use any of {', '.join(METRICS)}")
    details: dict[str, dict] = {}
    scores: dict[str, float] = {}
    for name in chosen:
        fn = METRICS[name]
        result = fn(codes, matrix) if name == "mig" else fn(codes, matrix, seed=seed)
        details[name] = _jsonable(result)
        for key in _HEADLINE[name]:
            if key in result:
                scores[key] = float(result[key])
    return {"factors": names, "scores": scores, "details": details}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
