"""lmvae: variational autoencoders made from frozen pretrained language models.

>>> from lmvae import LanguageVAE, TrainConfig, train
>>> vae = LanguageVAE.from_backbones("bert-base-uncased", "gpt2", latent_size=32)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public names -> defining module; imported on first use so `import lmvae` (and the CLI's
# --help) stays fast.
_EXPORTS = {
    "LanguageVAE": "lmvae.model",
    "VAEOutput": "lmvae.model",
    "VAEConfig": "lmvae.config",
    "EncoderConfig": "lmvae.config",
    "DecoderConfig": "lmvae.config",
    "BackboneRef": "lmvae.config",
    "AnnotationConfig": "lmvae.config",
    "PriorConfig": "lmvae.config",
    "AnnotatedCorpus": "lmvae.annotations",
    "read_annotations": "lmvae.annotations",
    "TrainConfig": "lmvae.train_config",
    "GenerationConfig": "lmvae.generation",
    "train": "lmvae.training",
    "evaluate": "lmvae.evaluation",
    "LmvaeError": "lmvae.errors",
}

__all__ = [
    "AnnotatedCorpus",
    "AnnotationConfig",
    "BackboneRef",
    "DecoderConfig",
    "EncoderConfig",
    "GenerationConfig",
    "LanguageVAE",
    "LmvaeError",
    "PriorConfig",
    "TrainConfig",
    "VAEConfig",
    "VAEOutput",
    "__version__",
    "evaluate",
    "read_annotations",
    "train",
]

if TYPE_CHECKING:
    from lmvae.annotations import AnnotatedCorpus, read_annotations
    from lmvae.config import (
        AnnotationConfig,
        BackboneRef,
        DecoderConfig,
        EncoderConfig,
        PriorConfig,
        VAEConfig,
    )
    from lmvae.errors import LmvaeError
    from lmvae.evaluation import evaluate
    from lmvae.generation import GenerationConfig
    from lmvae.model import LanguageVAE, VAEOutput
    from lmvae.train_config import TrainConfig
    from lmvae.training import train


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lmvae' has no attribute {name!r}")
