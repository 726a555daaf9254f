"""Semantic textual similarity (STS) probe: does latent closeness track human similarity?

For sentence pairs with a gold similarity score, the probe correlates the cosine similarity of
the two posterior means with the gold scores (Spearman's rank correlation, as in the STS
benchmarks' usual protocol, Cer et al., 2017; Pearson alongside).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..textfiles import jsonl_records
from .metrics.utils import as_float_array

__all__ = ["read_sts_pairs", "sts_correlation", "sts_probe"]

_FIRST = ("s1", "sentence1", "sentence_1", "text1", "text_a")
_SECOND = ("s2", "sentence2", "sentence_2", "text2", "text_b")
_SCORE = ("score", "similarity", "label", "gold", "relatedness_score")

Pair = tuple[str, str, float]


def _pick(record: dict, names: Sequence[str], where: str) -> Any:
    for name in names:
        if name in record:
            return record[name]
    raise DataError(f"{where}: no {names[0]!r} field (also tried {', '.join(names[1:])})")


def _pair(s1: Any, s2: Any, score: Any, where: str) -> Pair:
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise DataError(f"{where}: score {score!r} is not a number") from None
    if not isinstance(s1, str) or not isinstance(s2, str) or not s1.strip() or not s2.strip():
        raise DataError(f"{where}: both sentences must be non-empty text")
    return s1.strip(), s2.strip(), value


def read_sts_pairs(path: str | Path) -> list[Pair]:
    """``(s1, s2, score)`` rows from a JSONL file (fields s1/s2/score or sentence1/sentence2/
    score) or a CSV/TSV file (a header with those names, or three bare columns)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"STS file not found: {path}")
    rows: list[Pair] = []
    if path.suffix in (".jsonl", ".json"):
        for where, record in jsonl_records(path):
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected an object with s1, s2 and score")
            rows.append(
                _pair(
                    _pick(record, _FIRST, where),
                    _pick(record, _SECOND, where),
                    _pick(record, _SCORE, where),
                    where,
                )
            )
    else:
        delimiter = "," if path.suffix == ".csv" else "\t"
        with path.open(encoding="utf-8-sig", newline="") as f:
            table = [r for r in csv.reader(f, delimiter=delimiter) if any(c.strip() for c in r)]
        if not table:
            raise DataError(f"STS file is empty: {path}")
        header = [c.strip().lower() for c in table[0]]
        if any(h in _FIRST for h in header):
            names = {h: j for j, h in enumerate(header)}
            cols = [
                next((names[n] for n in group if n in names), None)
                for group in (_FIRST, _SECOND, _SCORE)
            ]
            if None in cols:
                raise DataError(f"{path}: the header needs s1, s2 and score columns")
            body = table[1:]
        else:
            cols, body = [0, 1, 2], table
        for i, row in enumerate(body, 2 if body is not table else 1):
            where = f"{path}:{i}"
            if len(row) <= max(cols):
                raise DataError(f"{where}: expected s1, s2 and score columns")
            rows.append(_pair(row[cols[0]], row[cols[1]], row[cols[2]], where))
    if len(rows) < 3:
        raise DataError(f"{path}: an STS probe needs at least 3 sentence pairs, got {len(rows)}")
    return rows


def sts_correlation(za: Any, zb: Any, gold: Sequence[float]) -> dict:
    """Spearman and Pearson correlation between cos(za_i, zb_i) and ``gold``.

    Returns ``{"spearman", "pearson", "n", "cosine"}`` (``cosine``: the per-pair similarities).
    """
    from scipy.stats import pearsonr, spearmanr

    a, b = as_float_array(za), as_float_array(zb)
    y = np.asarray(gold, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or len(y) != len(a):
        raise ConfigError(
            f"need za, zb of equal shape (N, D) and N scores: {a.shape}, {b.shape}, {y.shape}"
        )
    if len(y) < 3:
        raise ConfigError("correlations need at least 3 pairs")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = (a * b).sum(1) / np.maximum(norms, 1e-12)
    if np.ptp(cosine) == 0 or np.ptp(y) == 0:
        rho = r = float("nan")  # a constant column has no rank correlation
    else:
        rho, r = float(spearmanr(cosine, y).statistic), float(pearsonr(cosine, y).statistic)
    return {"spearman": rho, "pearson": r, "n": int(len(y)), "cosine": cosine.tolist()}


def sts_probe(vae: Any, pairs: Sequence[Pair] | str | Path, batch_size: int = 64) -> dict:
    """Encode both sides of each pair (posterior means, via ``vae.encode``) and correlate their
    cosine similarity with the gold scores; see :func:`sts_correlation`."""
    rows = read_sts_pairs(pairs) if isinstance(pairs, str | Path) else list(pairs)
    if len(rows) < 3:
        raise ConfigError("an STS probe needs at least 3 sentence pairs")
    unique = list(dict.fromkeys(s for r in rows for s in r[:2]))
    z = vae.encode(unique, batch_size=batch_size).detach().cpu().double().numpy()
    index = {s: i for i, s in enumerate(unique)}
    za = z[[index[r[0]] for r in rows]]
    zb = z[[index[r[1]] for r in rows]]
    return sts_correlation(za, zb, [r[2] for r in rows])
