"""Probes of a trained latent space, using only the public model API.

Traversal of single dimensions or directions, interpolation with a smoothness score (Word
Mover's Distance over word vectors), latent arithmetic, and disentanglement metrics
(:mod:`lmvae.probes.metrics`) as pure functions of arrays.
"""

from __future__ import annotations

from .arithmetic import combine, latent_arithmetic
from .interpolation import (
    interpolate,
    load_word_vectors,
    smoothness,
    word_movers_distance,
)
from .metrics import (
    beta_vae,
    dci,
    discretize,
    entropy,
    factor_vae,
    mig,
    modularity,
    mutual_info_matrix,
    sap,
)
from .traversal import traversal_values, traverse, traverse_direction

__all__ = [
    "beta_vae",
    "combine",
    "dci",
    "discretize",
    "entropy",
    "factor_vae",
    "interpolate",
    "latent_arithmetic",
    "load_word_vectors",
    "mig",
    "modularity",
    "mutual_info_matrix",
    "sap",
    "smoothness",
    "traversal_values",
    "traverse",
    "traverse_direction",
    "word_movers_distance",
]
