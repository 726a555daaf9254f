"""lmvae.codec: texts (and word labels) -> encoder and decoder tensors, ids -> texts, with the
demo's WordPiece encoder tokenizer and word-level decoder tokenizer (one token per word)."""

from __future__ import annotations

import pytest
import torch
from support import CORPUS, make_decoder_tokenizer, make_encoder_tokenizer, qwen2_tokenizer

from lmvae.codec import TextCodec
from lmvae.conditioning import PAD_LABEL, UNK_LABEL
from lmvae.config import VAEConfig
from lmvae.data import IGNORE_INDEX, tokenize_encoder
from lmvae.errors import ConfigError, DataError

TEXTS = ["the cat sat on the mat", "a dog", "birds fly south in winter"]
TAGS = ["DET", "W"]  # ids 2, 3


def tag(text):
    return ["DET" if w in ("the", "a") else "W" for w in text.split()]


LABELS = [tag(t) for t in TEXTS]


def _codec(encoder=False, decoder=False, max_length=64, decoder_tokenizer=None):
    ann = {"labels": TAGS if encoder or decoder else [], "encoder": encoder, "decoder": decoder}
    cfg = VAEConfig.create(
        "enc", "dec", 8, annotations=ann, encoder_max_length=max_length,
        decoder_max_length=max_length,
    )  # fmt: skip
    return TextCodec(cfg, make_encoder_tokenizer(), decoder_tokenizer or make_decoder_tokenizer())


def test_encoder_inputs_take_labels_only_for_a_conditioned_encoder():
    plain = _codec().encoder_inputs(TEXTS, LABELS)
    assert set(plain) == {"input_ids", "attention_mask"}  # labels ignored: not conditioned
    expected = tokenize_encoder(make_encoder_tokenizer(), TEXTS, 64)
    assert all(torch.equal(plain[k], expected[k]) for k in expected)
    enc = _codec(encoder=True).encoder_inputs(TEXTS, LABELS)
    assert torch.equal(enc["input_ids"], plain["input_ids"])
    assert torch.equal(enc["attention_mask"], plain["attention_mask"])
    # [CLS] the cat sat on the mat [SEP] [PAD]: one WordPiece per word.
    assert enc["token_labels"][0].tolist()[:8] == [PAD_LABEL, 2, 3, 3, 3, 2, 3, PAD_LABEL]
    assert enc["token_labels"][1].tolist()[4:] == [PAD_LABEL] * 4  # [SEP] and padding
    cut = _codec(encoder=True, max_length=4).encoder_inputs(TEXTS, LABELS)
    assert cut["token_labels"].shape == cut["input_ids"].shape == (3, 4)


def test_decoder_inputs_teacher_force_bos_to_eos():
    codec = _codec()
    rows = codec.decoder_rows(TEXTS)
    assert [len(r) for r in rows] == [6, 2, 5]
    batch = codec.decoder_inputs(TEXTS)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == (3, 7)
    assert batch["input_ids"][1].tolist() == [codec.bos_id, *rows[1]] + [codec.pad_id] * 4
    assert batch["labels"][1].tolist() == [*rows[1], codec.eos_id] + [IGNORE_INDEX] * 4
    assert batch["attention_mask"].sum(1).tolist() == [7, 3, 6]
    assert codec.decode(rows) == TEXTS
    assert codec.collate(rows, pad_to_multiple_of=8)["input_ids"].shape == (3, 8)
    assert [len(r) for r in _codec(max_length=4).decoder_rows(TEXTS)] == [3, 2, 3]
    with pytest.raises(ConfigError, match="empty sentence"):
        codec.decoder_inputs(["the cat", "   "])


def test_decoder_labels_only_for_a_conditioned_decoder():
    assert "label_ids" not in _codec(encoder=True).decoder_inputs(TEXTS, LABELS)
    assert _codec(encoder=True).target_labels(TEXTS, LABELS) is None
    assert _codec(encoder=True).output_labels([["DET"]], 1) is None
    codec = _codec(decoder=True)
    batch = codec.decoder_inputs(TEXTS, LABELS)
    # Each position carries the label of the token it predicts; EOS and padding have none.
    assert batch["label_ids"][1].tolist() == [2, 3] + [PAD_LABEL] * 5
    assert codec.decoder_label_rows(TEXTS, LABELS)[1] == [2, 3]
    assert torch.equal(codec.target_labels(TEXTS, LABELS), batch["label_ids"])
    out = codec.output_labels([["DET", "W"], ["W"]], 2)
    assert out.tolist() == [[2, 3], [3, PAD_LABEL]]
    # Labels named for generation must be known: a typo would mean "unknown" silently.
    with pytest.raises(ConfigError, match="'XYZ' are not in the model's label vocabulary"):
        codec.output_labels([["DET", "W", "XYZ"], ["W"]], 2)
    with pytest.raises(ConfigError, match="1 label rows for 2 latents"):
        codec.output_labels([["W"]], 2)


def test_word_labels_must_match_the_words():
    codec = _codec(encoder=True, decoder=True)
    with pytest.raises(DataError, match="2 label rows for 3 sentences"):
        codec.encoder_inputs(TEXTS, LABELS[:2])
    with pytest.raises(DataError, match="1 labels for 2 words in 'a dog'"):
        codec.decoder_inputs(TEXTS[1:2], [["DET"]])


def test_special_ids_fall_back_to_eos():
    codec = _codec()  # <|endoftext|> is BOS, EOS and padding
    assert codec.bos_id == codec.eos_id == codec.pad_id == 0
    qwen = _codec(decoder_tokenizer=qwen2_tokenizer(CORPUS))  # EOS only
    tok = qwen.decoder_tokenizer
    assert tok.bos_token_id is None and qwen.bos_id == tok.eos_token_id
    expected_pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    assert qwen.pad_id == expected_pad


def test_notes_count_cut_sentences_and_unknown_labels():
    assert _codec(encoder=True).notes(TEXTS, LABELS) == []  # nothing quietly changed
    # 6 and 5 words: 8 and 7 encoder tokens with [CLS] and [SEP]; the decoder keeps 5.
    notes = _codec(max_length=6).notes(TEXTS)
    assert notes == [
        "2 of 3 sentences are longer than the encoder's max_length and are cut to 6 tokens "
        "(a longer --max-length keeps them whole)",
        "1 of 3 sentences are longer than the decoder's max_length and are cut to 5 tokens "
        "(a longer --max-length keeps them whole)",
    ]
    odd = [["DET", "NOUN", "NOUN", "ADP", "DET", "NOUN"], ["DET", "W"], LABELS[2]]
    (line,) = _codec(encoder=True).notes(TEXTS, odd)
    assert line == (
        "4 of 13 word labels are not in the model's label vocabulary and are read as the "
        "unknown label: 'NOUN' x3, 'ADP' x1"
    )
    # ... where the encoder reads them as UNK_LABEL (counted, not refused: corpora may hold
    # labels the training data did not).
    ids = _codec(encoder=True).encoder_inputs(TEXTS, odd)["token_labels"][0].tolist()
    assert ids[1:7] == [2, UNK_LABEL, UNK_LABEL, UNK_LABEL, 2, UNK_LABEL]
