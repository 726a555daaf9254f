"""Disentanglement metrics as pure functions of ``codes`` (n_samples, n_latents) and discrete
``factors`` (n_samples, n_factors); each returns a JSON-serialisable dict of floats / lists."""

from __future__ import annotations

from .beta_vae import beta_vae
from .dci import dci, dci_from_importance
from .factor_vae import factor_vae
from .mig import mig
from .modularity import modularity, modularity_from_mi
from .sap import sap, sap_from_scores
from .utils import (
    FixedFactorSampler,
    check_codes_factors,
    discrete_entropy,
    discretize,
    encode_factors,
    entropy,
    mutual_info_matrix,
)

__all__ = [
    "FixedFactorSampler",
    "beta_vae",
    "check_codes_factors",
    "dci",
    "dci_from_importance",
    "discrete_entropy",
    "discretize",
    "encode_factors",
    "entropy",
    "factor_vae",
    "mig",
    "modularity",
    "modularity_from_mi",
    "mutual_info_matrix",
    "sap",
    "sap_from_scores",
]
