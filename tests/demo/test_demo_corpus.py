"""The synthetic demo corpus: determinism, shape of the records, shipped file, I/O."""

from __future__ import annotations

import collections
import re

import pytest

from lmvae.demo import corpus
from lmvae.demo.corpus import (
    ROLE_LABELS,
    TEMPLATE_FAMILIES,
    AnnotatedSentence,
    generate_corpus,
    load_demo_corpus,
    read_jsonl,
    write_jsonl,
)


@pytest.fixture(scope="module")
def default_corpus() -> list[AnnotatedSentence]:
    return generate_corpus()


def test_same_seed_same_corpus_other_seed_other_corpus():
    a = generate_corpus(300, seed=1)
    assert a == generate_corpus(300, seed=1)
    b = generate_corpus(300, seed=2)
    assert a != b
    assert {s.text for s in a} != {s.text for s in b}


def test_default_corpus_is_distinct_aligned_and_well_formed(default_corpus):
    assert len(default_corpus) == 3000
    assert len({s.text for s in default_corpus}) == 3000
    allowed = set(ROLE_LABELS)
    for s in default_corpus:
        words = s.text.split()
        assert len(s.labels) == len(words) == len(s.words), s
        assert corpus.MIN_WORDS <= len(words) <= corpus.MAX_WORDS, s
        assert re.fullmatch(r"[a-z]+( [a-z]+)*", s.text), s
        assert set(s.labels) <= allowed, s
        assert "V" in s.labels, s
        assert s.template in TEMPLATE_FAMILIES


def test_families_present_and_roughly_balanced(default_corpus):
    counts = collections.Counter(s.template for s in default_corpus)
    assert set(counts) == set(TEMPLATE_FAMILIES)
    assert 12 <= len(TEMPLATE_FAMILIES) <= 15
    share = len(default_corpus) / len(TEMPLATE_FAMILIES)
    assert min(counts.values()) >= 0.8 * share
    assert max(counts.values()) <= 1.1 * share


def test_lexicon_is_rich(default_corpus):
    words = {w for s in default_corpus for w in s.words}
    assert len(words) >= 500
    # slot fillers vary within a family: many distinct first-argument heads
    need_subjects = {
        s.words[1] for s in default_corpus if s.template == "need" and s.words[0] == "a"
    }
    assert len(need_subjects) >= 20


def test_roles_follow_the_constructions(default_corpus):
    by_family = collections.defaultdict(list)
    for s in default_corpus:
        by_family[s.template].append(s)
    for s in by_family["need"]:  # "a young oak needs water to grow"
        assert s.labels[-2:] == ("ARGM-PRP", "ARGM-PRP"), s
        assert s.labels[0] == "ARG0" and "V" in s.labels and "ARG1" in s.labels, s
    for s in by_family["taxonomy"]:  # "a robin is a kind of bird"
        v = s.labels.index("V")
        assert s.words[v] in ("is", "are"), s
        assert set(s.labels[:v]) == {"ARG1"} and set(s.labels[v + 1 :]) == {"ARG2"}, s
    for s in by_family["condition"]:  # "if the ice is heated then it melts"
        assert s.words[0] in ("if", "when"), s
        assert s.labels[0] == ("ARGM-ADV" if s.words[0] == "if" else "ARGM-TMP"), s
        if "then" in s.words:
            assert s.labels[s.words.index("then")] == "ARGM-DIS", s
    for s in by_family["ability"]:  # "an eagle can fly over the mountains"
        assert s.labels[s.words.index("can")] == "ARGM-MOD", s
        if "not" in s.words:
            assert s.labels[s.words.index("not")] == "ARGM-NEG", s


def test_labels_length_is_checked():
    with pytest.raises(ValueError):
        AnnotatedSentence("a plant needs water", ("ARG0", "ARG0", "V"), "need")


def test_asking_for_too_many_sentences_fails():
    with pytest.raises(ValueError):
        generate_corpus(10**6)


def test_jsonl_round_trip(tmp_path):
    records = generate_corpus(40, seed=5)
    path = tmp_path / "sub" / "c.jsonl"
    write_jsonl(records, path)
    assert read_jsonl(path) == records
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40
    one = AnnotatedSentence(
        "a plant needs water to grow",
        ("ARG0", "ARG0", "V", "ARG1", "ARGM-PRP", "ARGM-PRP"),
        "need",
    )
    write_jsonl([one], path)
    assert path.read_text(encoding="utf-8") == (
        '{"text": "a plant needs water to grow", "labels": ["ARG0", "ARG0", "V", "ARG1", '
        '"ARGM-PRP", "ARGM-PRP"], "template": "need"}\n'
    )
    assert read_jsonl(path) == [one]


def test_shipped_file_is_the_default_corpus(default_corpus, tmp_path):
    shipped = load_demo_corpus()
    assert shipped == default_corpus
    out = tmp_path / "corpus.jsonl"
    corpus.main(["--out", str(out)])
    from importlib import resources

    ref = resources.files("lmvae.demo").joinpath("data").joinpath("corpus.jsonl").read_bytes()
    assert out.read_bytes() == ref


def test_command_line_options(tmp_path):
    out = tmp_path / "small.jsonl"
    corpus.main(["--out", str(out), "--n", "50", "--seed", "3"])
    assert read_jsonl(out) == generate_corpus(50, seed=3)
