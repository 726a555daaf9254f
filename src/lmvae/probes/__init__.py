"""Probes of a trained latent space, using only the public model API.

Traversal of single dimensions or directions, interpolation with a smoothness score (Word
Mover's Distance over word vectors), latent arithmetic (and the analogy a - b + c), posterior
samples, disentanglement metrics (:mod:`lmvae.probes.metrics`, pure functions of arrays)
against factors read from role labels, cluster maps (and where new sentences fall on them),
linguistic-property and STS probes, latent usage (KL, active units, mutual information),
encoder-decoder compatibility (layer-wise CKA, :mod:`.cka`), and
:func:`run_probes` / :func:`write_report` for the HTML + JSON report.
"""

from __future__ import annotations

from .arithmetic import analogy, combine, latent_arithmetic
from .attention import slot_attention_mass
from .cka import encoder_decoder_cka, layerwise_cka, linear_cka
from .clusters import Projection, cluster_scores, fit_projection, nearest, project
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
from .posterior import posterior_samples
from .properties import probe_properties, sentence_properties
from .records import LabelledProbeModel, ProbeData, load_probe_data, model_needs
from .report import find_history, run_probes, write_report
from .sts import read_sts_pairs, sts_correlation, sts_probe
from .traversal import traversal_values, traverse, traverse_direction
from .usage import latent_usage, mutual_information

__all__ = [
    "LabelledProbeModel",
    "ProbeData",
    "Projection",
    "analogy",
    "beta_vae",
    "cluster_scores",
    "combine",
    "dci",
    "discretize",
    "encoder_decoder_cka",
    "disentanglement",
    "entropy",
    "factor_matrix",
    "factor_vae",
    "find_history",
    "fit_projection",
    "interpolate",
    "latent_arithmetic",
    "latent_usage",
    "layerwise_cka",
    "linear_cka",
    "load_probe_data",
    "load_word_vectors",
    "mig",
    "model_needs",
    "modularity",
    "mutual_info_matrix",
    "mutual_information",
    "nearest",
    "posterior_samples",
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
