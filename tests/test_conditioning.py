"""Annotation-conditioned VAEs (lmvae.conditioning, and the model's conditioned paths): word labels
pooled per label by the encoder, a label embedding per decoder position, label dropout, training
through the trainer, and exact save / load round trips."""

from __future__ import annotations

import json

import pytest
import torch
from support import CORPUS, randomize_trainable

import lmvae.model
from lmvae import LanguageVAE, TrainConfig, evaluate, train
from lmvae.annotations import PAD_LABEL, AnnotatedCorpus
from lmvae.conditioning import prepare_conditions
from lmvae.encoder import pool_by_label
from lmvae.errors import ConfigError, LmvaeError

DET, ADP = {"the", "a", "my", "his", "we"}, {"on", "in", "at", "over", "to", "with", "across"}


def tag(text):
    return ["DET" if w in DET else "ADP" if w in ADP else "W" for w in text.split()]


LABELS = [tag(t) for t in CORPUS]
VOCAB = ["ADP", "DET", "W"]  # ids 2, 3, 4
TEXTS, TEXT_LABELS = CORPUS[:3], LABELS[:3]


def _perturb_labels(vae, seed=0):
    """Label embeddings start at zero; give them weight so the tests see their effect."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        vae.decoder.label_embed.weight[1:].copy_(torch.randn(4, 64, generator=gen))


def _vae(make_vae, encoder=True, decoder=False, **opts):
    ann = {"labels": VOCAB, "encoder": encoder, "decoder": decoder}
    return make_vae("bert", "gpt2", annotations=ann, decoder_max_length=16, **opts).eval()


def test_pool_by_label_by_hand():
    states = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 7.0]]])
    mask = torch.tensor([[1, 1, 1, 0]])
    labels = torch.tensor([[PAD_LABEL, 2, 2, 3]])  # the last token is padding
    out = pool_by_label(states, mask, labels, groups=3)  # groups: unknown, label 2, label 3
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.0], [4.0, 3.0], [0.0, 0.0]]]))


def test_encoder_pools_states_per_label_and_needs_the_labels(make_vae):
    vae = _vae(make_vae)
    plain = vae.encoder_inputs(TEXTS)
    enc = vae.encoder_inputs(TEXTS, TEXT_LABELS)
    assert torch.equal(enc["input_ids"], plain["input_ids"])
    assert torch.equal(enc["attention_mask"], plain["attention_mask"])
    # The test tokenizer has one WordPiece per word, between [CLS] and [SEP].
    first = enc["token_labels"][0].tolist()
    assert first[: len(TEXT_LABELS[0]) + 2] == [0, 3, 4, 4, 2, 3, 4, 0]  # the cat sat on the mat
    feats = vae.features(**enc)
    assert feats.shape == (3, 1, 1 + 4, 64)  # pooled + (unknown, ADP, DET, W)
    swapped = [["W"] * len(r) for r in TEXT_LABELS]
    assert not torch.allclose(
        vae.encode(TEXTS, word_labels=swapped), vae.encode(TEXTS, word_labels=TEXT_LABELS)
    )
    with pytest.raises(ConfigError, match="conditioned on word labels"):
        vae.encode(TEXTS)
    with pytest.raises(LmvaeError, match="6 words but 2 labels: 'the cat sat on the mat'"):
        vae.encode(TEXTS[:1], word_labels=[["DET", "W"]])
    # A label outside the vocabulary pools with the unknown group instead of failing.
    odd = [["XYZ"] * len(r) for r in TEXT_LABELS]
    assert torch.isfinite(vae.encode(TEXTS, word_labels=odd)).all()


def test_decoder_labels_start_without_effect_then_condition_each_position(make_vae):
    vae = _vae(make_vae, encoder=False, decoder=True)
    batch = vae.decoder_inputs(TEXTS, TEXT_LABELS)
    assert batch["label_ids"][0].tolist()[:7] == [3, 4, 4, 2, 3, 4, PAD_LABEL]  # EOS: no label
    dec = vae.decoder
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        plain = dec.hidden_states(z, ids, mask)
        assert torch.equal(dec.hidden_states(z, ids, mask, batch["label_ids"]), plain)
        _perturb_labels(vae)
        labelled = dec.logits(dec.hidden_states(z, ids, mask, batch["label_ids"]))
        state = dec.start(z, batch["label_ids"])
        steps = torch.stack([dec.step(ids[:, t : t + 1], state) for t in range(ids.shape[1])], 1)
        real = mask.bool()
        torch.testing.assert_close(steps[real], labelled[real], atol=1e-4, rtol=1e-4)
        # Changing the label of position 3 changes positions 3.. only (causal).
        other = batch["label_ids"].clone()
        other[0, 3] = 4 if other[0, 3] != 4 else 3
        moved = dec.logits(dec.hidden_states(z, ids, mask, other))
    torch.testing.assert_close(moved[0, :3], labelled[0, :3], atol=1e-6, rtol=0)
    assert (moved[0, 3] - labelled[0, 3]).abs().max() > 1e-3


def test_label_dropout_drops_whole_sentences_in_training_only(make_vae):
    vae = _vae(make_vae, encoder=False, decoder=True, annotations_decoder_dropout=0.5)
    _perturb_labels(vae)
    texts, labels = CORPUS[:16], LABELS[:16]
    enc = vae.encoder_inputs(texts)
    batch = {**vae.decoder_inputs(texts, labels), "features": vae.features(**enc), "sample": False}
    with torch.no_grad():
        with_labels = vae(**batch).tokens.nll
        without = vae(**{k: v for k, v in batch.items() if k != "label_ids"}).tokens.nll
        vae.train()
        dropped = vae(**batch, generator=torch.Generator().manual_seed(0)).tokens.nll
    vae.eval()
    is_with = torch.isclose(dropped, with_labels)
    is_without = torch.isclose(dropped, without)
    assert bool((is_with | is_without).all())
    assert 0 < int(is_without.sum()) < 16


def test_generation_with_and_without_labels(make_vae):
    vae = _vae(make_vae, encoder=False, decoder=True)
    _perturb_labels(vae, seed=3)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    free = vae.decode(z, max_new_tokens=6)
    given = vae.decode(z, max_new_tokens=6, word_labels=[["DET", "W", "ADP"]] * 4)
    assert free != given
    beams = vae.decode(z, strategy="beam", num_beams=3, word_labels=[["DET", "W", "ADP"]] * 4)
    assert len(beams) == 4
    assert len(vae.reconstruct(TEXTS)) == 3  # a decoder-only condition is optional


def test_both_sides_train_through_the_trainer_and_evaluate(make_vae):
    vae = _vae(make_vae, encoder=True, decoder=True)
    corpus = AnnotatedCorpus(list(CORPUS), LABELS)
    cond = prepare_conditions(vae, corpus)
    assert cond.word_labels == LABELS and len(cond.decoder_labels) == len(CORPUS)
    cfg = TrainConfig(epochs=8, batch_size=8, progress=False, eval_decode_sentences=0)
    history = train(vae, corpus.subset(range(32)), corpus.subset(range(32, 40)), cfg).history
    assert history[-1]["train_recon"] < 0.75 * history[0]["train_recon"]
    metrics = evaluate(vae, corpus.subset(range(32, 40)), decode_sentences=8)
    assert 0 <= metrics["bleu"] <= 1 and metrics["kl"] > 0
    with pytest.raises(ConfigError, match="conditioned on word labels"):
        evaluate(vae, CORPUS[:4])


def test_save_and_load_reproduce_a_conditioned_model(make_vae, tmp_path):
    vae = _vae(make_vae, encoder=True, decoder=True)
    randomize_trainable(vae, seed=5)
    vae.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["annotations"]["labels"] == VOCAB
    loaded = LanguageVAE.from_pretrained(tmp_path / "m")
    assert loaded.label_vocabulary == VOCAB
    a = loaded.encode(TEXTS, word_labels=TEXT_LABELS)
    torch.testing.assert_close(a, vae.encode(TEXTS, word_labels=TEXT_LABELS), atol=0, rtol=0)
    kw = {"word_labels": TEXT_LABELS, "max_new_tokens": 8}
    assert loaded.reconstruct(TEXTS, **kw) == vae.reconstruct(TEXTS, **kw)


def test_spacy_source_annotates_missing_labels(make_vae, monkeypatch):
    calls = []

    def fake(texts, model, attribute):
        calls.append((len(texts), model, attribute))
        return [tag(t) for t in texts]

    monkeypatch.setattr(lmvae.model, "spacy_annotate", fake)
    vae = _vae(make_vae, annotations_source="spacy", annotations_spacy_attribute="dep")
    torch.testing.assert_close(vae.encode(TEXTS), vae.encode(TEXTS, word_labels=TEXT_LABELS))
    assert calls == [(3, "en_core_web_sm", "dep")]
