"""Probes of a trained latent space, using only the public model API.

Traversal of single dimensions or directions, interpolation with a smoothness score (Word
Mover's Distance over word vectors), latent arithmetic, disentanglement metrics
(:mod:`lmvae.probes.metrics`, pure functions of arrays) against factors read from role labels,
cluster maps, linguistic-property and STS probes, latent usage (KL, active units, mutual
information), and :func:`run_probes` / :func:`write_report` for the HTML + JSON report.
"""

from __future__ import annotations

from .arithmetic import combine, latent_arithmetic
from .attention import slot_attention_mass
from .clusters import cluster_scores, project
from .disentanglement import disentanglement, factor_matrix, role_factors
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
from .properties import probe_properties, sentence_properties
from .records import ProbeData, load_probe_data
from .report import find_history, run_probes, write_report
from .sts import read_sts_pairs, sts_correlation, sts_probe
from .traversal import traversal_values, traverse, traverse_direction
from .usage import latent_usage, mutual_information

__all__ = [
    "ProbeData",
    "beta_vae",
    "cluster_scores",
    "combine",
    "dci",
    "discretize",
    "disentanglement",
    "entropy",
    "factor_matrix",
    "factor_vae",
    "find_history",
    "interpolate",
    "latent_arithmetic",
    "latent_usage",
    "load_probe_data",
    "load_word_vectors",
    "mig",
    "modularity",
    "mutual_info_matrix",
    "mutual_information",
    "probe_properties",
    "project",
    "read_sts_pairs",
    "role_factors",
    "run_probes",
    "sap",
    "sentence_properties",
    "slot_attention_mass",
    "smoothness",
    "sts_correlation",
    "sts_probe",
    "traversal_values",
    "traverse",
    "traverse_direction",
    "word_movers_distance",
    "write_report",
]
