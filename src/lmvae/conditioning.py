"""Conditions of a corpus prepared once for training and evaluation: the word labels the
encoder pools by, the label of every decoder target token, and the prior category of each
sentence; :meth:`Conditions.batch` turns a batch of them into the tensors
:meth:`lmvae.LanguageVAE.forward` takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from lmvae.annotations import AnnotatedCorpus
from lmvae.data import collate_labels

if TYPE_CHECKING:
    from lmvae.model import LanguageVAE


@dataclass
class Conditions:
    """Per-sentence conditions of one corpus (any of them None when the model has no use)."""

    word_labels: list[list[str]] | None = None
    decoder_labels: list[list[int]] | None = None  # label id of each decoder target token
    categories: Tensor | None = None  # (N,) prior component ids

    def labels_of(self, indices: Sequence[int]) -> list[list[str]] | None:
        """Word labels of the given sentences, for :meth:`LanguageVAE.encoder_inputs`."""
        return None if self.word_labels is None else [self.word_labels[i] for i in indices]

    def batch(self, indices: Sequence[int], width: int) -> dict[str, Tensor]:
        """``label_ids`` (B, width) and ``category`` (B,) of a batch, as far as there are any."""
        out = {}
        if self.decoder_labels is not None:
            out["label_ids"] = collate_labels([self.decoder_labels[i] for i in indices], width)
        if self.categories is not None:
            out["category"] = self.categories[list(indices)]
        return out


def prepare_conditions(model: LanguageVAE, corpus: AnnotatedCorpus) -> Conditions:
    """The conditions of an annotated corpus (see :meth:`LanguageVAE.annotate`)."""
    cond = Conditions()
    if corpus.labels is not None and model.encoder.label_groups:
        cond.word_labels = corpus.labels
    if corpus.labels is not None and model.decoder.label_embed is not None:
        cond.decoder_labels = model.decoder_label_rows(corpus.texts, corpus.labels)
    if model.config.prior.kind == "mixture" and corpus.categories is not None:
        cond.categories = model.category_ids(corpus.categories)
    return cond
