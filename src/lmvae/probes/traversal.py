"""Latent traversals: what does one latent dimension (or direction) control?

A traversal keeps a sentence's latent fixed except along one axis, walks that axis over a range
of values and decodes each point. Reading the decoded column shows what the axis encodes (tense,
length, topic ...) or that it encodes nothing.

The range matters. ``span="prior"`` walks the quantiles of N(0, 1), the distribution the decoder
was trained to read. ``span="posterior"`` walks the quantiles of the seed's own posterior
N(mu_d, sigma_d^2) with ``sigma_d = exp(0.5 * logvar_d)``: the values the encoder considers
plausible for that sentence, which stays on the data manifold when the posterior is sharp.
(A common slip is passing sigma where a log-variance is expected; :func:`traversal_values`
takes the log-variance, as the encoder returns it.)

Only the public model API is used: ``vae.posterior``, ``vae.decode`` and ``vae.latent_size``.
All points of all seeds are decoded in one batched ``vae.decode`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import norm

from ..errors import ConfigError

__all__ = ["SPANS", "traversal_values", "traverse", "traverse_direction"]

SPANS = ("posterior", "prior")


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 2:
        raise ConfigError(f"a traversal needs an integer steps >= 2, got {steps!r}")


def _check_quantiles(quantiles: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise ConfigError(f"quantiles must be a pair (low, high), got {quantiles!r}") from None
    if not 0.0 < lo < hi < 1.0:
        raise ConfigError(f"quantiles must satisfy 0 < low < high < 1, got {quantiles!r}")
    return lo, hi


def _check_span(span: str) -> None:
    if span not in SPANS:
        raise ConfigError(f"unknown traversal span {span!r}: use one of {', '.join(SPANS)}")


def traversal_values(
    mu_d: float,
    logvar_d: float,
    steps: int = 7,
    span: str = "posterior",
    quantiles: Sequence[float] = (0.05, 0.95),
) -> np.ndarray:
    """``steps`` values of one latent coordinate, at evenly spaced quantiles in ``quantiles``.

    ``span="posterior"``: quantiles of N(mu_d, sigma^2), sigma = exp(0.5 * logvar_d).
    ``span="prior"``: quantiles of N(0, 1) (mu_d and logvar_d are ignored).
    """
    _check_steps(steps)
    _check_span(span)
    lo, hi = _check_quantiles(quantiles)
    q = np.linspace(lo, hi, steps)
    if span == "prior":
        return norm.ppf(q)
    mu, logvar = float(mu_d), float(logvar_d)
    if not (np.isfinite(mu) and np.isfinite(logvar)):
        raise ConfigError(f"posterior parameters must be finite, got mu={mu}, logvar={logvar}")
    return norm.ppf(q, loc=mu, scale=float(np.exp(0.5 * logvar)))


def _unit(direction: Any, size: int) -> torch.Tensor:
    u = torch.as_tensor(np.asarray(direction, dtype=np.float64)).reshape(-1)
    if u.numel() != size:
        raise ConfigError(f"direction must have {size} entries (the latent size), got {u.numel()}")
    norm_u = torch.linalg.vector_norm(u)
    if not torch.isfinite(norm_u) or norm_u == 0:
        raise ConfigError("direction must be a finite, non-zero vector")
    return u / norm_u


def _check_dims(dims: Sequence[int] | None, size: int) -> list[int]:
    if dims is None:
        return list(range(size))
    if isinstance(dims, int | np.integer):
        dims = [int(dims)]
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int | np.integer) or not 0 <= d < size:
            raise ConfigError(f"dims must be integers in [0, {size}), got {d!r}")
        out.append(int(d))
    if not out:
        raise ConfigError("dims is empty: give at least one dimension, or None for all")
    return out


def _check_values(values: Sequence[float]) -> list[float]:
    try:
        out = [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError):
        raise ConfigError(f"values must be numbers, got {values!r}") from None
    if not out or not all(np.isfinite(out)):
        raise ConfigError(f"values must be a non-empty list of finite numbers, got {values!r}")
    return out


def _seeds(seed_texts: Sequence[str]) -> list[str]:
    if isinstance(seed_texts, str):
        seed_texts = [seed_texts]
    seeds = list(seed_texts)
    if not seeds or not all(isinstance(s, str) for s in seeds):
        raise ConfigError("seed_texts must be a non-empty list of sentences")
    return seeds


def traverse(
    vae: Any,
    seed_texts: Sequence[str] | str,
    dims: Sequence[int] | int | None = None,
    direction: Any = None,
    steps: int = 7,
    span: str = "posterior",
    quantiles: Sequence[float] = (0.05, 0.95),
    values: Sequence[float] | None = None,
    **generation: Any,
) -> list[dict[str, Any]]:
    """Decode traversals of each seed along latent dimensions and/or a direction.

    With neither ``dims`` nor ``direction`` every dimension is traversed; with ``direction``
    only, only the direction; with both, both. Each seed starts from its posterior mean; the
    traversed coordinate (``z . u`` for a unit direction ``u``, ``z_d`` for a dimension) is set
    to each of :func:`traversal_values` in turn, the rest of ``z`` is unchanged.
    ``values`` replaces those quantiles with given coordinates (a slider's positions: the
    explorer decodes one value at a time). ``generation`` goes to ``vae.decode``
    (e.g. ``strategy="beam"``).

    Returns rows ``{"seed", "dim", "step", "value", "text"}`` ordered by seed, then axis, then
    step; ``dim`` is the dimension index, or ``"direction"``.
    """
    seeds = _seeds(seed_texts)
    _check_steps(steps)
    _check_span(span)
    _check_quantiles(quantiles)
    fixed = None if values is None else _check_values(values)
    size = int(vae.latent_size)
    axes: list[tuple[int | str, torch.Tensor]] = []
    if dims is not None or direction is None:
        for d in _check_dims(dims, size):
            axes.append((d, torch.nn.functional.one_hot(torch.tensor(d), size).double()))
    if direction is not None:
        axes.append(("direction", _unit(direction, size)))

    mu, logvar = vae.posterior(seeds)
    mu, var = mu.detach().cpu().double(), logvar.detach().cpu().double().exp()
    points, rows = [], []
    for i, seed in enumerate(seeds):
        for name, u in axes:
            # Mean and variance of the projection z . u under the diagonal posterior.
            m = float(mu[i] @ u)
            v = float((var[i] * u * u).sum())
            walk = traversal_values(m, float(np.log(v)), steps, span, quantiles)
            base = mu[i] - m * u
            for step, value in enumerate(walk if fixed is None else fixed):
                points.append(base + float(value) * u)
                rows.append({"seed": seed, "dim": name, "step": step, "value": float(value)})
    texts = vae.decode(torch.stack(points).float(), **generation)
    for row, text in zip(rows, texts, strict=True):
        row["text"] = text
    return rows


def traverse_direction(
    vae: Any,
    seed_texts: Sequence[str] | str,
    direction: Any,
    steps: int = 7,
    span: str = "posterior",
    quantiles: Sequence[float] = (0.05, 0.95),
    **generation: Any,
) -> list[dict[str, Any]]:
    """Traverse each seed along an arbitrary direction (normalised to unit length): the
    component ``z . u`` walks the quantiles of its posterior (or of N(0, 1) for the prior).
    Rows as in :func:`traverse`, with ``dim == "direction"``."""
    if direction is None:
        raise ConfigError("traverse_direction needs a direction vector")
    return traverse(
        vae,
        seed_texts,
        direction=direction,
        steps=steps,
        span=span,
        quantiles=quantiles,
        **generation,
    )
