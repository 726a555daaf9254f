"""Synthetic codes with known disentanglement for the metric tests (built once per session)."""

from __future__ import annotations

import numpy as np
import pytest

N_SAMPLES = 1500
FACTOR_SIZES = (3, 4, 5, 6)


@pytest.fixture(scope="session")
def synth() -> dict[str, np.ndarray]:
    """factors (n, 4) with 3/4/5/6 values, and codes:

    - ``perfect``: each standardised factor in its own dim (+ N(0, 0.05^2)), plus 2 noise dims;
    - ``perfect_bare``: the same without the noise dims;
    - ``rotated``: ``perfect`` times a random 6x6 orthogonal matrix;
    - ``entangled``: ``perfect`` with its 4 factor dims mixed by the 4x4 Hadamard rotation
      (every dim loads equally on every factor: the most entangled rotation);
    - ``noise``: pure N(0, 1) codes with 6 dims.
    """
    rng = np.random.default_rng(1234)
    factors = np.stack([rng.integers(s, size=N_SAMPLES) for s in FACTOR_SIZES], axis=1)
    std = (factors - factors.mean(0)) / factors.std(0)
    bare = std + 0.05 * rng.standard_normal(std.shape)
    perfect = np.concatenate([bare, rng.standard_normal((N_SAMPLES, 2))], axis=1)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    hadamard = np.eye(6)
    hadamard[:4, :4] = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    return {
        "factors": factors,
        "perfect": perfect,
        "perfect_bare": bare,
        "rotated": perfect @ q,
        "entangled": perfect @ hadamard,
        "noise": rng.standard_normal((N_SAMPLES, 6)),
    }
