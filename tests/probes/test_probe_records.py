"""lmvae.probes.records: probe sentences with word labels and sentence labels."""

from __future__ import annotations

import json

import pytest

from lmvae.errors import DataError
from lmvae.probes.records import ProbeData, load_probe_data


def test_jsonl_reads_word_labels_and_scalar_sentence_labels(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [
        {"text": "the cat sat", "labels": ["ARG0", "ARG0", "V"], "template": "t1", "id": 1},
        {"text": "dogs run", "labels": ["ARG0", "V"], "template": "t2", "id": 2, "extra": "x"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    data = load_probe_data(path)
    assert data.texts == ["the cat sat", "dogs run"]
    assert data.roles == [["ARG0", "ARG0", "V"], ["ARG0", "V"]]
    # "extra" is on one row only: a label not every row has cannot be probed.
    assert data.labels == {"template": ["t1", "t2"], "id": ["1", "2"]}


def test_csv_columns_become_sentence_labels_and_txt_is_text_only(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("text,topic\nthe cat sat,pets\nrain falls,weather\n")
    data = load_probe_data(csv)
    assert data.texts == ["the cat sat", "rain falls"] and data.roles is None
    assert data.labels == {"topic": ["pets", "weather"]}
    txt = tmp_path / "d.txt"
    txt.write_text("one\n\ntwo\n")
    assert load_probe_data(txt).texts == ["one", "two"]


def test_demo_corpus_has_roles_and_templates():
    data = load_probe_data("demo")
    assert len(data) == 3000
    assert len(data.roles[0]) == len(data.texts[0].split())
    assert len(set(data.labels["template"])) == 15


def test_subset_keeps_rows_aligned():
    roles = [["X", "Y"], ["Z"], ["P", "Q", "R"]]
    data = ProbeData(["a b", "c", "d e f"], roles, {"k": list("xyz")})
    sub = data.subset([2, 0])
    assert sub.texts == ["d e f", "a b"] and sub.roles[0] == ["P", "Q", "R"]
    assert sub.labels["k"] == ["z", "x"]


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"text": "a b c", "labels": ["X"]}\n', "has 3 words but 1 word labels"),
        ('{"sentence": "a"}\n', "no text field 'text'"),
        ('{"text": "a", "labels": "X"}\n', "must be a list"),
        ("not json\n", "not valid JSON"),
        ('{"text": "a", "labels": ["X"]}\n{"text": "b"}\n', "only 1 of 2 rows"),
    ],
)
def test_bad_jsonl_is_one_clear_error(tmp_path, content, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        load_probe_data(path)


def test_missing_file_and_empty_data(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_probe_data(tmp_path / "none.jsonl")
    empty = tmp_path / "e.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="no sentences"):
        load_probe_data(empty)
