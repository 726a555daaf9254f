"""Probes for trained latent spaces: disentanglement metrics (see :mod:`lmvae.probes.metrics`)."""

from __future__ import annotations

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

__all__ = [
    "beta_vae",
    "dci",
    "discretize",
    "entropy",
    "factor_vae",
    "mig",
    "modularity",
    "mutual_info_matrix",
    "sap",
]
