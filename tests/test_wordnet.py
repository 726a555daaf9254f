"""lmvae.wordnet: the real corpus of glosses and examples, on a hand-made WordNet folder (and on
Debian's wordnet-base where it is installed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmvae.cli import main
from lmvae.errors import DataError
from lmvae.wordnet import DEFAULT_ROOT, build_corpus, synset_sentences

HEADER = "  1 This software and database is being provided to you, the LICENSEE\n"
LINES = {
    "noun": [
        '00001 03 n 01 cat 0 000 | feline mammal usually having thick soft fur; "the cat sat on '
        'the mat"; "a cat is small"',
        "00002 03 n 01 dog 0 000 | a member of the genus Canis; domesticated since prehistoric "
        "times",
        "00003 03 n 01 pup 0 000 | a young dog; the young of various animals",
        "00004 03 n 01 x 0 000 | short; feline mammal usually having thick soft fur",
    ],
    "verb": ["00005 29 v 01 run 0 000 | move fast by using one's feet; \"Don't run--you'll fall\""],
    "adj": ["00006 00 a 01 able 0 000 | having the necessary means or skill to do something"],
    "adv": [
        "00007 02 r 01 very 0 000 | to a high degree or extent; favorably or with much respect"
    ],
}


@pytest.fixture
def root(tmp_path):
    for part, lines in LINES.items():
        (tmp_path / f"data.{part}").write_text(HEADER + "".join(line + "  \n" for line in lines))
    return tmp_path


def test_a_gloss_is_split_on_semicolons_and_examples_are_taken_apart():
    gloss = 'feline mammal usually having thick soft fur; "the cat sat on the mat"; "a cat"  '
    assert synset_sentences(gloss) == [
        "feline mammal usually having thick soft fur",
        "the cat sat on the mat",
        "a cat",
    ]


def test_corpus_rules_and_split_by_synset(root):
    corpus = build_corpus(root, heldout_fraction=0.3, seed=0)
    both = corpus.train + corpus.heldout
    assert len(both) == len({s.lower() for s in both})  # deduplicated
    assert all(3 <= len(s.split()) <= 32 for s in both)
    assert "short" not in both and "a young dog" in both
    assert "the cat sat on the mat" in both and "Don't run--you'll fall" in both
    # Every synset lies on one side: the cat's gloss and its examples stay together.
    cat = {"feline mammal usually having thick soft fur", "the cat sat on the mat"}
    assert cat <= set(corpus.train) or cat <= set(corpus.heldout)
    assert corpus.meta["seed"] == 0 and corpus.meta["sentences"]["heldout"] == len(corpus.heldout)
    # Synset 00004 keeps nothing ("short" is one word, its other part a duplicate).
    assert corpus.meta["synsets"]["train"] + corpus.meta["synsets"]["heldout"] == 6
    again = build_corpus(root, heldout_fraction=0.3, seed=0)
    assert (again.train, again.heldout) == (corpus.train, corpus.heldout)  # seeded
    other = build_corpus(root, heldout_fraction=0.3, seed=1)
    assert sorted(other.train + other.heldout) == sorted(both)


def test_missing_wordnet_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="install Debian's wordnet-base"):
        build_corpus(tmp_path)


def test_cli_writes_the_corpus(root, tmp_path, capsys):
    assert main(["corpus", "wordnet", "--out", str(tmp_path / "c"), "--root", str(root)]) == 0
    train = (tmp_path / "c" / "train.txt").read_text().splitlines()
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    assert len(train) == meta["sentences"]["train"]
    assert main(["corpus", "nope", "--out", str(tmp_path / "d")]) == 2
    assert "unknown corpus" in capsys.readouterr().err


@pytest.mark.skipif(not Path(DEFAULT_ROOT, "data.noun").is_file(), reason="no wordnet-base")
def test_debians_wordnet_gives_a_large_corpus():
    corpus = build_corpus()
    assert len(corpus.train) > 100_000 and len(corpus.heldout) > 5_000
    assert not set(corpus.train) & set(corpus.heldout)


def test_sentence_factors_name_each_sentences_part_of_speech_and_lexicographer_file(root):
    from lmvae.wordnet import sentence_factors

    factors = sentence_factors(root)
    assert factors["the cat sat on the mat"] == {"pos": "noun", "lexfile": "noun.Tops"}
    assert factors["don't run--you'll fall"] == {"pos": "verb", "lexfile": "verb.body"}
    assert factors["to a high degree or extent"] == {"pos": "adv", "lexfile": "adv.all"}
    corpus = build_corpus(root, heldout_fraction=0.3, seed=0)
    assert all(s.lower() in factors for s in corpus.train + corpus.heldout)
