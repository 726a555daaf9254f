"""Conditioning: word labels (semantic roles, POS ...) and sentence categories as model inputs.

From an :class:`~lmvae.annotations.AnnotatedCorpus` (read by :mod:`lmvae.annotations`) to what
:class:`lmvae.LanguageVAE` takes: label ids, the label of each sub-word token, labels made by
spaCy on the fly, a corpus checked against the model (:func:`annotate`), its per-sentence
:class:`Conditions` and their batches; and, for a new model, the annotation and prior sections of
its config filled from its data (:func:`configure_conditions`).

Label ids: 0 is padding (special tokens, BOS/EOS, padding: no label), 1 a label outside the
vocabulary, then the vocabulary in order from 2.  The alignment goes through character offsets of
a fast tokenizer, so it holds for byte-level BPE (GPT-2: a word's first piece carries the leading
space), WordPiece (``##`` continuations) and SentencePiece (``▁`` word starts) alike: each token
takes the label of the word holding its first non-space character; a token made only of the space
before a word takes that word's label; special tokens (CLS, SEP, BOS, EOS) and padding take the
padding label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from torch import Tensor
from transformers import PreTrainedTokenizerBase

from lmvae.annotations import AnnotatedCorpus, as_corpus
from lmvae.data import collate_labels
from lmvae.errors import ConfigError, DataError

if TYPE_CHECKING:
    from lmvae.config import VAEConfig
    from lmvae.model import LanguageVAE

#: Label id of padding, special tokens and "no label" positions.
PAD_LABEL = 0
#: Label id of a label the model's vocabulary does not hold.
UNK_LABEL = 1

WordLabels = Sequence[Sequence[str]]


# -- label ids and their alignment to tokens ---------------------------------------------------


def label_ids(row: Sequence[str], vocabulary: Sequence[str]) -> list[int]:
    """Word labels -> ids: labels of the vocabulary from 2, anything else UNK_LABEL."""
    index = {lab: i + 2 for i, lab in enumerate(vocabulary)}
    return [index.get(lab, UNK_LABEL) for lab in row]


def unknown_labels(word_labels: WordLabels, vocabulary: Sequence[str]) -> dict[str, int]:
    """Labels of ``word_labels`` outside ``vocabulary``, with how often each occurs."""
    known = set(vocabulary)
    counts: dict[str, int] = {}
    for row in word_labels:
        for lab in row:
            if lab not in known:
                counts[lab] = counts.get(lab, 0) + 1
    return counts


def word_label_ids(
    texts: Sequence[str], word_labels: WordLabels, vocabulary: Sequence[str]
) -> list[list[int]]:
    """Label ids of each word of each text, checked: one row per text, one label per word."""
    if len(word_labels) != len(texts):
        raise DataError(f"{len(word_labels)} label rows for {len(texts)} sentences")
    for text, row in zip(texts, word_labels, strict=True):
        if len(row) != len(text.split()):
            raise DataError(
                f"{len(row)} labels for {len(text.split())} words in {text!r}: give one "
                "label per whitespace-separated word"
            )
    return [label_ids(row, vocabulary) for row in word_labels]


def token_words(
    text: str, offsets: Sequence[tuple[int, int]], special: Sequence[int] | None = None
) -> list[int | None]:
    """The whitespace-word index of each token (None: special token or no word).

    offsets are a fast tokenizer's character spans of the tokens of ``text``; special (0/1 per
    token) marks tokens the tokenizer added.
    """
    owner = [-1] * len(text)  # character -> word index
    starts = {}
    for w, match in enumerate(re.finditer(r"\S+", text)):
        owner[match.start() : match.end()] = [w] * (match.end() - match.start())
        starts[match.start()] = w
    out: list[int | None] = []
    for t, (s, e) in enumerate(offsets):
        if special is not None and special[t]:
            out.append(None)
            continue
        word = next((owner[c] for c in range(s, min(e, len(text))) if owner[c] >= 0), None)
        if word is None:
            # A piece made only of the space before a word (SentencePiece's lone "▁") or with
            # an empty span belongs to the word that starts right after it, if one does.
            word = starts.get(e)
        out.append(word)
    return out


def align_labels(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    word_labels: Sequence[Sequence[int]],
    **tokenizer_kwargs,
) -> tuple[dict, list[list[int]]]:
    """Tokenise texts and give each token the label id of its word (PAD_LABEL for special
    tokens and padding).

    ``tokenizer_kwargs`` are those the model tokenises with (special tokens, truncation,
    padding), so the labels line up with exactly the tokens the model sees.  Returns the
    tokenizer's output and one label row per text, as long as its ``input_ids`` row.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"aligning word labels needs a fast tokenizer (character offsets); "
            f"{type(tokenizer).__name__} is not one"
        )
    enc = tokenizer(
        list(texts),
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        **tokenizer_kwargs,
    )
    rows = []
    for i, (text, labels) in enumerate(zip(texts, word_labels, strict=True)):
        offsets = [tuple(int(x) for x in o) for o in enc["offset_mapping"][i]]
        special = [int(x) for x in enc["special_tokens_mask"][i]]
        if "attention_mask" in enc:
            special = [
                s or not int(m) for s, m in zip(special, enc["attention_mask"][i], strict=True)
            ]
        words = token_words(text, offsets, special)
        rows.append([PAD_LABEL if w is None else int(labels[w]) for w in words])
    return enc, rows


# -- spaCy ------------------------------------------------------------------------------------


def spacy_annotate(
    texts: Sequence[str], nlp: object | str = "en_core_web_sm", attribute: str = "pos"
) -> list[list[str]]:
    """One label per whitespace word from a spaCy pipeline (an object or a package name):
    ``pos`` (universal POS), ``tag`` (fine tag), ``dep`` (dependency relation) or ``ent``
    (entity type, ``O`` outside entities).  A word split by spaCy ("dog." -> "dog", ".") takes
    the label of its first spaCy token."""
    if isinstance(nlp, str):
        try:
            import spacy
        except ImportError:
            raise ConfigError(
                "on-the-fly annotation needs spaCy: pip install 'lmvae[spacy]' and "
                f"python -m spacy download {nlp}"
            ) from None
        try:
            nlp = spacy.load(nlp)
        except OSError:
            raise ConfigError(
                f"spaCy pipeline {nlp!r} is not installed: python -m spacy download {nlp}"
            ) from None
    getters = {
        "pos": lambda t: t.pos_,
        "tag": lambda t: t.tag_,
        "dep": lambda t: t.dep_,
        "ent": lambda t: t.ent_type_ or "O",
    }
    if attribute not in getters:
        raise ConfigError(f"unknown spaCy attribute {attribute!r}: use {', '.join(getters)}")
    get = getters[attribute]
    out = []
    for text, doc in zip(texts, nlp.pipe(list(texts)), strict=True):
        offsets = [(t.idx, t.idx + len(t.text)) for t in doc]
        words = token_words(text, offsets)
        row: list[str | None] = [None] * len(text.split())
        for token, w in zip(doc, words, strict=True):
            if w is not None and row[w] is None:
                row[w] = get(token) or "O"
        out.append([lab or "O" for lab in row])
    return out


# -- a corpus as model inputs -----------------------------------------------------------------


def annotate(
    model: LanguageVAE, data: Sequence[str] | AnnotatedCorpus, categories: bool = True
) -> AnnotatedCorpus:
    """The corpus with everything the model's conditions need, checked: word labels (made
    by spaCy when the model annotates on the fly) and, for a mixture prior and unless
    ``categories=False``, categories."""
    corpus = as_corpus(data)
    ann = model.config.annotations
    if ann.enabled and corpus.labels is None:
        if ann.source == "spacy":
            labels = spacy_annotate(corpus.texts, ann.spacy_model, ann.spacy_attribute)
            corpus = AnnotatedCorpus(corpus.texts, labels, corpus.categories)
        elif ann.encoder:
            raise ConfigError(
                f"this model is conditioned on word labels ({ann.field!r}): give one label "
                "per word of each sentence"
            )
    if categories and model.config.prior.kind == "mixture":
        if corpus.categories is None:
            raise ConfigError(
                f"the mixture prior needs the category ({model.config.prior.field!r}) of "
                "every sentence"
            )
        model.category_ids(corpus.categories)  # names an unknown category now
    return corpus


def word_labels_of(
    model: LanguageVAE, texts: list[str], word_labels: WordLabels | None
) -> list[list[str]] | None:
    """The word labels of texts for the model: the given ones, checked, or made by spaCy when
    the model annotates on the fly (None when there are none and none are needed)."""
    rows = None if word_labels is None else [list(row) for row in word_labels]
    return annotate(model, AnnotatedCorpus(texts, rows), categories=False).labels


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
    """The conditions of a corpus prepared once for training and evaluation (see
    :func:`annotate`): the word labels the encoder pools by, the label of every decoder target
    token, and the prior component of each sentence."""
    cond = Conditions()
    if corpus.labels is not None and model.encoder.label_groups:
        cond.word_labels = corpus.labels
    if corpus.labels is not None and model.decoder.label_embed is not None:
        cond.decoder_labels = model.codec.decoder_label_rows(corpus.texts, corpus.labels)
    if model.config.prior.kind == "mixture" and corpus.categories is not None:
        cond.categories = model.category_ids(corpus.categories)
    return cond


# -- a new model's config from its data --------------------------------------------------------


def configure_conditions(
    config: VAEConfig,
    data: Sequence[str] | AnnotatedCorpus,
    condition: Literal["encoder", "decoder", "both"] = "encoder",
    label_field: str = "labels",
    spacy_attribute: str | None = None,
    spacy_model: str = "en_core_web_sm",
    category_field: str | None = None,
) -> Sequence[str] | AnnotatedCorpus:
    """Fill the annotation and prior sections of a new model's config from its training data.

    Word labels in the data (read from ``label_field``), or made by spaCy with
    ``spacy_attribute`` (pos, tag, dep or ent), set the label vocabulary and enter the model
    where ``condition`` says; ``category_field`` makes the prior a mixture over the data's
    categories.  Returns the data, annotated by spaCy when asked.
    """
    if condition not in ("encoder", "decoder", "both"):
        raise ConfigError(f"unknown condition {condition!r}: use encoder, decoder or both")
    ann = config.annotations
    if spacy_attribute is not None:
        corpus = as_corpus(data)
        if corpus.labels is not None:
            raise ConfigError("the data already holds word labels: use them or spaCy's, not both")
        ann.source, ann.spacy_model, ann.spacy_attribute = "spacy", spacy_model, spacy_attribute
        labels = spacy_annotate(corpus.texts, spacy_model, spacy_attribute)
        data = AnnotatedCorpus(corpus.texts, labels, corpus.categories)
        vocab = data.label_vocabulary()
    elif isinstance(data, AnnotatedCorpus) and data.labels is not None:
        vocab, ann.field = data.label_vocabulary(), label_field
    else:
        vocab = []
    if vocab:
        ann.labels = vocab
        ann.encoder = condition in ("encoder", "both")
        ann.decoder = condition in ("decoder", "both")
    if category_field is not None:
        config.prior.kind, config.prior.field = "mixture", category_field
        config.prior.categories = as_corpus(data).category_vocabulary()
    config.validate()
    return data
