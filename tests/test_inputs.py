"""lmvae.inputs: what the model's methods and the trainer accept as sentences."""

from __future__ import annotations

import pytest

from lmvae.annotations import AnnotatedCorpus
from lmvae.errors import ConfigError
from lmvae.inputs import check_corpus, check_sentence, sentence_list


def test_sentence_list_accepts_sentences_and_names_the_bad_one():
    assert sentence_list(("a cat", "a dog")) == ["a cat", "a dog"]
    with pytest.raises(ConfigError, match="single string"):
        sentence_list("a cat")
    with pytest.raises(ConfigError, match="no sentences"):
        sentence_list([])
    with pytest.raises(ConfigError, match="sentence 1 is empty"):
        sentence_list(["a cat", "  "])
    with pytest.raises(ConfigError, match="sentence 0 must be a string, got int"):
        sentence_list([3])


def test_check_sentence_names_the_field():
    check_sentence("fine", "start")
    with pytest.raises(ConfigError, match="^start is empty"):
        check_sentence("", "start")


def test_check_corpus_refuses_a_file_name_or_non_strings(tmp_path):
    check_corpus("train_texts", ["a", "b"])
    check_corpus("train_texts", AnnotatedCorpus(["a"]))
    with pytest.raises(ConfigError, match="read it first"):
        check_corpus("train_texts", str(tmp_path / "corpus.txt"))
    with pytest.raises(ConfigError, match="must be a list of sentences, got NoneType"):
        check_corpus("eval_texts", None)
    with pytest.raises(ConfigError, match=r"train_texts\[1\] is a int"):
        check_corpus("train_texts", ["a", 1])
