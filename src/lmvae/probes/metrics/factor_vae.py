"""FactorVAE metric (z-min-var), data-driven variant.

Kim & Mnih (2018), "Disentangling by Factorising" -- the paper that introduces this metric: the
fixed factor should be readable from the (normalised) latent dim with least variance in a batch
sharing that factor, via a majority-vote classifier.
"""

from __future__ import annotations

import numpy as np

from .utils import FixedFactorSampler, check_codes_factors

__all__ = ["factor_vae"]


def factor_vae(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    batch_size: int = 64,
    n_train: int = 500,
    n_eval: int = 300,
    min_variance: float = 0.05,
    seed: int = 0,
) -> dict:
    """FactorVAE (z-min-var) score of ``codes`` (n_samples, n_latents) w.r.t. ``factors``.

    Codes are divided by their std over all rows; dims whose raw variance is ``<= min_variance``
    are pruned as inactive (as in disentanglement_lib; pass 0.0 to keep all non-constant dims).
    Each metric point is drawn from the data (see
    :class:`~lmvae.probes.metrics.utils.FixedFactorSampler`): a factor ``k`` and a value ``v``
    are chosen, ``batch_size`` rows with factor ``k == v`` are drawn (without replacement when
    the group is large enough) and the active dim of least normalised variance votes for ``k``.
    The majority-vote classifier (dim -> most voted factor) is built on ``n_train`` points and
    scored on ``n_eval`` fresh ones. Deterministic given ``seed``. Chance level is about
    ``1 / n_usable_factors``. With no active dim every score is 0.

    Returns ``{"factor_vae", "train_accuracy", "eval_accuracy", "n_active_dims", "chance"}``.
    """
    codes, factors = check_codes_factors(codes, factors)
    if batch_size < 2 or n_train < 1 or n_eval < 1:
        raise ValueError("batch_size must be >= 2 and n_train, n_eval positive")
    rng = np.random.default_rng(seed)
    sampler = FixedFactorSampler(factors)
    chance = 1.0 / len(sampler.factor_ids)
    var = codes.var(axis=0, ddof=1)
    active = np.flatnonzero((var > min_variance) & (var > 0.0))
    if active.size == 0:
        return {
            "factor_vae": 0.0,
            "train_accuracy": 0.0,
            "eval_accuracy": 0.0,
            "n_active_dims": 0,
            "chance": chance,
        }
    normed = codes[:, active] / np.sqrt(var[active])
    n_factors = factors.shape[1]
    votes_tr = _votes(normed, sampler, n_train, batch_size, n_factors, rng)
    votes_ev = _votes(normed, sampler, n_eval, batch_size, n_factors, rng)
    classifier = np.argmax(votes_tr, axis=1)  # active dim -> factor
    train_acc = float(votes_tr.max(axis=1).sum() / n_train)
    eval_acc = float(votes_ev[np.arange(active.size), classifier].sum() / n_eval)
    return {
        "factor_vae": eval_acc,
        "train_accuracy": train_acc,
        "eval_accuracy": eval_acc,
        "n_active_dims": int(active.size),
        "chance": chance,
    }


def _votes(
    normed: np.ndarray,
    sampler: FixedFactorSampler,
    n_points: int,
    batch_size: int,
    n_factors: int,
    rng: np.random.Generator,
) -> np.ndarray:
    votes = np.zeros((normed.shape[1], n_factors), dtype=np.int64)
    for _ in range(n_points):
        k, rows = sampler.sample(rng)
        batch = rng.choice(rows, size=batch_size, replace=rows.size < batch_size)
        dim = int(np.argmin(normed[batch].var(axis=0, ddof=1)))
        votes[dim, k] += 1
    return votes
