"""Checks on what users pass as sentences, one place for the model's methods and the trainer:
a bad input fails at once with one line naming it, before any model work."""

from __future__ import annotations

import os
from collections.abc import Sequence

from lmvae.annotations import AnnotatedCorpus
from lmvae.errors import ConfigError
from lmvae.streaming import LineCorpus


def sentence_list(texts: Sequence[str]) -> list[str]:
    """The sentences as a list, each checked: a string with something in it."""
    if isinstance(texts, str):
        raise ConfigError("expected a list of sentences, got a single string")
    texts = list(texts)
    if not texts:
        raise ConfigError("no sentences given")
    for i, text in enumerate(texts):
        check_sentence(text, f"sentence {i}")
    return texts


def check_sentence(text: object, name: str) -> None:
    """An empty or whitespace-only sentence has no tokens to encode: the posterior would be
    the encoder's reading of its special tokens alone, and a made-up sentence would come back."""
    if not isinstance(text, str):
        raise ConfigError(f"{name} must be a string, got {type(text).__name__}: {text!r:.60}")
    if not text.strip():
        raise ConfigError(f"{name} is empty or only whitespace ({text!r:.20}): nothing to encode")


def check_corpus(name: str, texts: object) -> None:
    """A corpus must be sentences: a list of strings or an AnnotatedCorpus, not a single
    string or a file name (which would train on its characters)."""
    if isinstance(texts, AnnotatedCorpus | LineCorpus):  # a stream is checked as it is indexed
        return
    if isinstance(texts, str | bytes | os.PathLike):
        raise ConfigError(
            f"{name} is a single {type(texts).__name__}, not a list of sentences: to train on a "
            "file, read it first (lmvae.data.read_corpus)"
        )
    if not (hasattr(texts, "__len__") and hasattr(texts, "__getitem__")):
        raise ConfigError(f"{name} must be a list of sentences, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ConfigError(
                f"{name}[{i}] is a {type(text).__name__}, not a sentence: {text!r:.60}"
            )
