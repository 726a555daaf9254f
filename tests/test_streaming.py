"""lmvae.streaming: a corpus file read lazily through its line offsets, the same sentences as
read_corpus gives, and the hash split of held-out lines."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
import torch
from support import CORPUS

from lmvae.data import EpochBatches, epoch_batches, read_corpus
from lmvae.distributed import Processes
from lmvae.errors import DataError
from lmvae.streaming import LineCorpus, held_out_hash, open_stream

AWKWARD = (
    "\ufeffthe first line follows a byte-order mark\r\n"
    "\r\n"
    "   \n"
    "  padded with spaces  \n"
    "crlf ends this one\r\n"
    "multibyte: caf\u00e9 \u00fcber na\u00efve \u65e5\u672c\u8a9e \U0001f600\n"
    "\n"
    "a tab\tinside\n" + "long " * 200 + "line\n"
    "the last line has no newline"
)


def test_the_index_reads_the_lines_read_corpus_reads(tmp_path):
    path = tmp_path / "awkward.txt"
    path.write_bytes(AWKWARD.encode("utf-8"))
    corpus, held_out = open_stream(path)
    expected = read_corpus(path)
    assert held_out == [] and len(corpus) == len(expected) == 7
    assert list(corpus) == expected
    assert corpus[0] == "the first line follows a byte-order mark"
    assert corpus[-1] == "the last line has no newline"
    assert corpus[3].endswith("\U0001f600") and len(corpus[5]) == 5 * 200 + 4
    assert corpus.texts([6, 0, 3, 3]) == [expected[6], expected[0], expected[3], expected[3]]
    assert corpus.offsets.dtype == np.int64 and corpus.offsets.nbytes == 8 * 7
    with pytest.raises(IndexError):
        corpus[7]


def test_jsonl_lines_read_their_field(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [
        {"text": " a cat \u00e9 "},
        "a bare string",
        {"text": "", "x": 1},
        {"body": "x", "text": "b"},
    ]
    path.write_text(
        "\n".join(json.dumps(r) for r in rows[:2])
        + "\n\n"
        + json.dumps(rows[2])
        + "\r\n"
        + json.dumps(rows[3])
    )
    corpus, _ = open_stream(path)
    assert list(corpus) == read_corpus(path) == ["a cat \u00e9", "a bare string", "b"]
    body, _ = open_stream(tmp_path / "c.jsonl", text_field="text")
    assert body[2] == "b"


def test_a_pickled_corpus_reads_with_its_own_file(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(CORPUS))
    corpus, _ = open_stream(path)
    copy = pickle.loads(pickle.dumps(corpus))
    assert isinstance(copy, LineCorpus) and list(copy) == CORPUS


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.txt", b"fine\n\xff\xfe broken\n", r"bad.txt:2 is not UTF-8 text"),
        ("nul.txt", b"fine\nnul \x00 here\n", r"nul.txt:2: not text, the line holds a NUL"),
        ("bad.jsonl", b'{"text": "ok"}\n{"text": \n', r"bad.jsonl:2: not valid JSON"),
        (
            "field.jsonl",
            b'{"text": "ok"}\n{"body": "x"}\n',
            r"field.jsonl:2: no string field 'text'",
        ),
        ("empty.txt", b"\n  \r\n", r"holds no sentences"),
        ("table.csv", b"text\na b\n", r"a streamed corpus is a .txt .* not .csv"),
    ],
)
def test_bad_files_are_one_data_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        open_stream(path)


def test_a_missing_file_and_a_dataset_name_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_stream(tmp_path / "missing.txt")
    with pytest.raises(DataError, match=r"hf:wikitext .*datasets"):
        open_stream("hf:wikitext")


def _lines(n):
    return [f"sentence number {i} of the stream" for i in range(n)]


def test_the_hash_split_is_deterministic_disjoint_and_order_free(tmp_path):
    lines = _lines(2000)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(lines) + "\n")
    shuffled = lines[:]
    random.Random(1).shuffle(shuffled)
    b.write_text("\n".join(shuffled))
    train_a, held_a = open_stream(a, eval_fraction=0.1)
    train_b, held_b = open_stream(b, eval_fraction=0.1)
    assert held_a == held_b  # the same lines, in the same (hash) order
    cut = 0.1 * 2**64
    assert set(held_a) == {t for t in lines if held_out_hash(t) < cut}
    assert 150 < len(held_a) < 250
    assert set(train_a).isdisjoint(held_a) and set(train_a) | set(held_a) == set(lines)
    assert list(train_a) == [t for t in lines if t not in set(held_a)]  # in file order
    assert open_stream(a, eval_fraction=0.1)[1] == held_a  # again: the same


def test_at_most_max_eval_lines_are_held_out_the_rest_train(tmp_path):
    lines = _lines(500)
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines))
    train, held = open_stream(path, eval_fraction=0.5, max_eval=20)
    hashes = sorted(held_out_hash(t) for t in lines)
    assert [held_out_hash(t) for t in held] == hashes[:20]
    assert len(train) == 480 and list(train) == [t for t in lines if t not in set(held)]


def test_a_duplicate_line_falls_on_one_side(tmp_path):
    lines = _lines(300) * 2
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines))
    train, held = open_stream(path, eval_fraction=0.2)
    assert held and set(train).isdisjoint(held) and len(held) % 2 == 0


@pytest.mark.parametrize(
    ("n", "batch", "world"), [(22, 4, 1), (23, 6, 2), (21, 6, 4), (5, 8, 1), (100_003, 1000, 2)]
)
def test_lazy_epoch_batches_are_the_listed_ones(n, batch, world):
    listed = epoch_batches(n, batch, torch.Generator().manual_seed(7))
    for rank in range(world):
        lazy = EpochBatches(n, batch, torch.Generator().manual_seed(7), rank, world)
        expected = Processes(rank=rank, world=world).shard_batches(listed)
        assert len(lazy) == len(expected) and list(lazy) == expected
        assert list(lazy[2:]) == expected[2:] and len(lazy[1:][1:]) == len(expected[2:])


def test_a_file_changed_after_indexing_is_a_data_error(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a cat"}\n{"text": "a dog"}\n')
    corpus, _ = open_stream(path)
    path.write_text('{"text": "a cat"}\n')  # truncated
    assert corpus[0] == "a cat"
    with pytest.raises(
        DataError, match=r"c.jsonl changed after it was indexed \(no sentence at byte 18\)"
    ):
        corpus[1]
