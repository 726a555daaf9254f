"""lmvae.data: corpus readers, splitting and the decoder/encoder collation."""

from __future__ import annotations

import json

import pytest
import torch
from support import CORPUS, make_decoder_tokenizer, make_encoder_tokenizer

from lmvae.data import (
    IGNORE_INDEX,
    collate_decoder,
    epoch_batches,
    read_corpus,
    split_corpus,
    tokenize_decoder,
    tokenize_encoder,
)
from lmvae.errors import DataError

SENTENCES = ["the cat sat", "a dog runs, fast", 'she said "hi"']


def test_read_txt_skips_blank_lines_and_strips(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("  the cat sat  \n\n\t\na dog runs\n")
    assert read_corpus(f) == ["the cat sat", "a dog runs"]


def test_read_jsonl_default_and_custom_field(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text("\n".join(json.dumps({"text": s, "id": i}) for i, s in enumerate(SENTENCES)))
    assert read_corpus(f) == SENTENCES
    g = tmp_path / "d.jsonl"
    g.write_text("".join(json.dumps({"sentence": s}) + "\n\n" for s in SENTENCES))
    assert read_corpus(g, text_field="sentence") == SENTENCES


def test_read_json_list_of_strings_or_objects(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps(SENTENCES))
    assert read_corpus(f) == SENTENCES
    g = tmp_path / "d.json"
    g.write_text(json.dumps([{"body": s} for s in SENTENCES]))
    assert read_corpus(g, text_field="body") == SENTENCES


def test_read_csv_and_tsv_with_quoting_and_custom_column(tmp_path):
    import csv

    f = tmp_path / "c.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        for i, s in enumerate(SENTENCES):
            w.writerow([i, s])
    assert read_corpus(f) == SENTENCES
    g = tmp_path / "c.tsv"
    g.write_text("label\tsentence\n" + "".join(f"x\t{s}\n" for s in ["one two", "three"]))
    assert read_corpus(g, text_field="sentence") == ["one two", "three"]


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_corpus(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="does not exist"):
        read_corpus("nope")  # a bare name that is neither a file nor an org/name dataset id


@pytest.mark.parametrize("name, content", [("e.txt", "\n  \n"), ("e.jsonl", ""), ("e.csv", "")])
def test_empty_file_is_a_data_error(tmp_path, name, content):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(DataError, match="no sentences"):
        read_corpus(f)


def test_directory_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not a file"):
        read_corpus(tmp_path)


def test_bad_json_line_names_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(DataError) as err:
        read_corpus(f)
    assert f"{f}:2" in str(err.value)


def test_jsonl_record_without_the_field_names_the_line(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"text": "ok"}\n\n{"other": "x"}\n')
    with pytest.raises(DataError, match=r"c\.jsonl:3: no string field 'text'"):
        read_corpus(f)


def test_bad_json_file_is_a_data_error(tmp_path):
    f = tmp_path / "c.json"
    f.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_corpus(f)
    f.write_text(json.dumps({"text": "a dict, not a list"}))
    with pytest.raises(DataError, match="JSON list"):
        read_corpus(f)


def test_missing_csv_column_names_the_columns(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("id,sentence\n1,hello there\n")
    with pytest.raises(DataError) as err:
        read_corpus(f)
    assert "'text'" in str(err.value) and "id, sentence" in str(err.value)


def test_jsonl_text_with_unicode_line_separator_round_trips(tmp_path):
    f = tmp_path / "c.jsonl"
    texts = ["first\u2028still first", "second"]
    f.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
    assert read_corpus(f) == texts


def test_csv_with_utf8_bom(tmp_path):
    f = tmp_path / "c.csv"
    f.write_bytes("text,id\nthe cat sat,1\n".encode("utf-8-sig"))
    assert read_corpus(f) == ["the cat sat"]


# -- splitting -------------------------------------------------------------------------------


def test_split_corpus_deterministic_disjoint_and_complete():
    texts = [f"sentence {i}" for i in range(40)]
    train, held = split_corpus(texts, 0.1, 1000, seed=3)
    assert (train, held) == split_corpus(texts, 0.1, 1000, seed=3)
    assert len(held) == 4 and len(train) == 36
    assert set(train).isdisjoint(held)
    assert sorted(train + held) == sorted(texts)
    # Another seed holds out other sentences; the order of the training part is kept.
    assert split_corpus(texts, 0.1, 1000, seed=4)[1] != held
    assert train == [t for t in texts if t not in held]


def test_split_corpus_bounds():
    texts = [f"s{i}" for i in range(40)]
    assert len(split_corpus(texts, 0.5, 3, seed=0)[1]) == 3  # max_eval caps the split
    assert len(split_corpus(texts[:5], 0.01, 10, seed=0)[1]) == 1  # at least one held out
    assert split_corpus(texts, 0.0, 10, seed=0) == (texts, [])
    with pytest.raises(DataError, match="too small"):
        split_corpus(["only one"], 0.5, 10, seed=0)


# -- tokenisation and collation --------------------------------------------------------------


def test_collate_decoder_by_hand():
    bos, eos, pad = 7, 8, 9
    batch = collate_decoder([[1, 2, 3], [4]], bos, eos, pad)
    assert batch["input_ids"].tolist() == [[7, 1, 2, 3], [7, 4, 9, 9]]
    assert batch["labels"].tolist() == [[1, 2, 3, 8], [4, 8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert all(t.dtype == torch.long for t in batch.values())
    padded = collate_decoder([[1, 2, 3], [4]], bos, eos, pad, pad_to_multiple_of=3)
    assert padded["input_ids"].tolist() == [[7, 1, 2, 3, 9, 9], [7, 4, 9, 9, 9, 9]]
    assert padded["labels"][:, 4:].eq(IGNORE_INDEX).all()
    assert padded["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]]


def test_collate_decoder_invariants_on_real_tokens():
    tok = make_decoder_tokenizer()
    rows = tokenize_decoder(tok, CORPUS[:6], max_length=64)
    eos = tok.eos_token_id
    batch = collate_decoder(rows, bos_id=eos, eos_id=eos, pad_id=tok.pad_token_id)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    for i, row in enumerate(rows):
        n = len(row)
        assert ids[i, 0] == eos  # starts with BOS
        assert ids[i, 1 : n + 1].tolist() == row
        assert labels[i, :n].tolist() == row and labels[i, n] == eos  # ends with EOS
        assert (labels[i, n + 1 :] == IGNORE_INDEX).all()  # pads ignored by the loss
        assert (mask[i, n + 1 :] == 0).all() and (mask[i, : n + 1] == 1).all()
        # the label at t is the input at t + 1 (teacher forcing shift)
        assert labels[i, :n].tolist() == ids[i, 1 : n + 1].tolist()


def test_tokenize_decoder_adds_no_specials_and_leaves_room_for_eos():
    tok = make_decoder_tokenizer()
    rows = tokenize_decoder(tok, ["the cat sat on the mat"], max_length=4)
    assert rows == [tok("the cat sat", add_special_tokens=False)["input_ids"]]
    full = tokenize_decoder(tok, ["the cat sat on the mat"], max_length=64)[0]
    assert len(full) == 6 and tok.eos_token_id not in full


def test_tokenize_encoder_pads_and_truncates():
    tok = make_encoder_tokenizer()
    enc = tokenize_encoder(tok, ["the cat sat on the mat", "a dog"], max_length=5)
    assert enc["input_ids"].shape == (2, 5)
    assert enc["attention_mask"].tolist()[1] == [1, 1, 1, 1, 0]
    assert enc["input_ids"][0, 0] == tok.cls_token_id


def test_epoch_batches_without_bucketing_cut_a_permutation_in_order():
    got = epoch_batches(103, 8, torch.Generator().manual_seed(7), lengths=[1] * 103)
    expected = torch.randperm(103, generator=torch.Generator().manual_seed(7)).tolist()
    assert [i for b in got for i in b] == expected
    assert [len(b) for b in got] == [8] * 12 + [7]


def test_epoch_batches_with_bucketing_group_similar_lengths_in_random_order():
    lengths = [(i * 7919) % 13 + 1 for i in range(500)]

    def batches(seed, bucket):
        return epoch_batches(500, 16, torch.Generator().manual_seed(seed), lengths, bucket)

    def padding(bs):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)

    plain, bucketed = batches(0, 0), batches(0, 8)
    # Same items, same batch count and sizes (one short batch), far less padding.
    assert sorted(i for b in bucketed for i in b) == list(range(500))
    assert sorted(map(len, bucketed)) == sorted(map(len, plain))
    assert padding(bucketed) < padding(plain) / 3
    # Deterministic per seed; another seed gives other batches in another order.
    assert batches(0, 8) == bucketed
    again = batches(1, 8)
    assert again != bucketed and {tuple(b) for b in again} != {tuple(b) for b in bucketed}
    # The batch order is not the sorted order.
    firsts = [lengths[b[0]] for b in bucketed]
    assert firsts != sorted(firsts)
