"""lmvae.annotations: reading labelled JSONL and CoNLL-style files into an AnnotatedCorpus."""

from __future__ import annotations

import json

import pytest

from lmvae.annotations import AnnotatedCorpus, read_annotations
from lmvae.errors import DataError


def test_read_jsonl_labels_and_categories(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [
        {"text": "the cats sleep", "roles": ["ARG0", "ARG0", "V"], "family": "habitat"},
        {"text": "dogs bark", "roles": ["ARG0", "V"], "family": "sound"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    corpus = read_annotations(path, "roles", "family")
    assert corpus.texts == ["the cats sleep", "dogs bark"]
    assert corpus.labels == [["ARG0", "ARG0", "V"], ["ARG0", "V"]]
    assert corpus.categories == ["habitat", "sound"]
    assert corpus.label_vocabulary() == ["ARG0", "V"]
    assert read_annotations(path, None, "family").labels is None


def test_jsonl_errors_name_the_line_and_the_problem(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(
        json.dumps({"text": "a b", "labels": ["X", "Y"]})
        + "\n"
        + json.dumps({"text": "the cats sleep", "labels": ["X", "Y"]})
        + "\n"
    )
    with pytest.raises(DataError, match=r"a\.jsonl:2: 2 labels for 3 words in 'the cats sleep'"):
        read_annotations(path)
    with pytest.raises(
        DataError, match=r"a\.jsonl:1: no label field 'pos' \(fields: text, labels\)"
    ):
        read_annotations(path, "pos")
    with pytest.raises(DataError, match="no category field 'family'"):
        read_annotations(path, None, "family")
    (tmp_path / "a.txt").write_text("a b\n")
    with pytest.raises(DataError, match="annotations are read from .jsonl"):
        read_annotations(tmp_path / "a.txt")


CONLL = """# global.columns = ID FORM POS ROLE
# template = habitat
1\tbears\tNOUN\tARG0
2\tlive\tVERB\tV
3\tin\tADP\tARGM-LOC
4\tforests\tNOUN\tARGM-LOC

# template = diet
1\towls\tNOUN\tARG0
2\teat\tVERB\tV
3\tmice\tNOUN\tARG1
"""


def test_read_conll_columns_by_name_or_index_with_sentence_comments(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text(CONLL)
    roles = read_annotations(path, "role", "template")
    assert roles.texts == ["bears live in forests", "owls eat mice"]
    assert roles.labels == [["ARG0", "V", "ARGM-LOC", "ARGM-LOC"], ["ARG0", "V", "ARG1"]]
    assert roles.categories == ["habitat", "diet"]
    assert read_annotations(path, "2").labels[1] == ["NOUN", "VERB", "NOUN"]
    assert read_annotations(path, "-1").labels == roles.labels
    with pytest.raises(DataError, match=r"a\.conll:3: unknown label column 'srl' \(columns: ID"):
        read_annotations(path, "srl")
    with pytest.raises(DataError, match="no '# year = ...' comment"):
        read_annotations(path, "role", "year")


def test_read_conllu_skips_multiword_ranges(tmp_path):
    cols = ["_"] * 10
    lines = ["# text = they don't"]
    for ident, form, upos in (("1", "they", "PRON"), ("2-3", "don't", "_"), ("2", "don't", "AUX")):
        row = list(cols)
        row[0], row[1], row[3] = ident, form, upos
        lines.append("\t".join(row))
    path = tmp_path / "a.conllu"
    path.write_text("\n".join(lines) + "\n")
    corpus = read_annotations(path, "upos")
    assert corpus.texts == ["they don't"]
    assert corpus.labels == [["PRON", "AUX"]]


def test_annotated_corpus_checks_its_rows():
    with pytest.raises(DataError, match="sentence 1 has 2 words but 1 labels"):
        AnnotatedCorpus(["a b"], [["X"]])
    corpus = AnnotatedCorpus(["a b", "c"], [["X", "Y"], ["Z"]], ["p", "q"])
    sub = corpus.subset([1])
    assert (sub.texts, sub.labels, sub.categories) == (["c"], [["Z"]], ["q"])
