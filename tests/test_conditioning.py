"""lmvae.conditioning: word labels aligned to the sub-word tokens of byte-level BPE (GPT-2),
WordPiece (BERT) and SentencePiece (Llama / T5) tokenizers, checked token by token on hand-built
vocabularies; labels from spaCy; a corpus checked against a model and its Conditions; a new
config filled from its data; and the conditioned model end to end: word labels pooled per label
by the encoder, a label embedding per decoder position, label dropout, training through the
trainer, and exact save / load round trips."""

from __future__ import annotations

import json

import pytest
import torch
from support import CORPUS, make_decoder_tokenizer, make_encoder_tokenizer, randomize_trainable
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertTokenizerFast, PreTrainedTokenizerFast

import lmvae.conditioning
from lmvae import LanguageVAE, TrainConfig, evaluate, train
from lmvae.annotations import AnnotatedCorpus
from lmvae.conditioning import (
    PAD_LABEL,
    UNK_LABEL,
    Conditions,
    align_labels,
    configure_conditions,
    label_ids,
    prepare_conditions,
    spacy_annotate,
    token_words,
    word_label_ids,
)
from lmvae.config import VAEConfig
from lmvae.demo.corpus import load_demo_corpus
from lmvae.errors import ConfigError, DataError, LmvaeError

DET_WORDS = {"the", "a", "my", "his", "we"}
ADP_WORDS = {"on", "in", "at", "over", "to", "with", "across"}


def tag(text):
    return ["DET" if w in DET_WORDS else "ADP" if w in ADP_WORDS else "W" for w in text.split()]


TAGGED = [tag(t) for t in CORPUS]
TAGS = ["ADP", "DET", "W"]  # ids 2, 3, 4
TEXTS, TEXT_LABELS = CORPUS[:3], TAGGED[:3]


# -- label ids and their alignment to tokens -------------------------------------------------

POS = ["DET", "NOUN", "VERB", "ADV", "NUM"]
DET, NOUN, VERB, ADV, NUM = range(2, 7)  # ids: 0 padding, 1 unknown, then POS
SENTENCE = "the cats sleep outside"
SENTENCE_POS = ["DET", "NOUN", "VERB", "ADV"]


def _chain_merges(tokens):
    """BPE merges that build each token left to right, one character at a time."""
    merges, made = [], []
    for token in tokens:
        current = token[0]
        for ch in token[1:]:
            merges.append((current, ch))
            current += ch
            made.append(current)
    return list(dict.fromkeys(merges)), list(dict.fromkeys(made))


def gpt2_style(trim_offsets: bool, bos_eos: bool = False) -> PreTrainedTokenizerFast:
    """Byte-level BPE as GPT-2 has it: "Ġ" marks a word's leading space on its first piece."""
    merges, made = _chain_merges(["the", "Ġcat", "Ġslee", "Ġout", "side"])
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(["<|endoftext|>", *alphabet, *made])}
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if bos_eos:
        tok.post_processor = processors.TemplateProcessing(
            single="<|endoftext|> $A <|endoftext|>", special_tokens=[("<|endoftext|>", 0)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=trim_offsets)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )


def wordpiece() -> BertTokenizerFast:
    """BERT: lowercasing, punctuation split off, "##" continuations, [CLS] ... [SEP]."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s", "sleep", "out"]
    vocab += ["##side", ".", "a", "dog"]
    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return BertTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def sentencepiece() -> PreTrainedTokenizerFast:
    """SentencePiece (Unigram, "▁" word starts) with a <s> BOS, as Llama and T5 have it."""
    pieces = ["<unk>", "<s>", "</s>", "▁", "▁the", "▁cat", "s", "▁sleep", "▁out", "side", "4", "2"]
    pieces += list("abcdefghijklmnopqrstuvwxyz")
    tok = Tokenizer(models.Unigram([(p, -1.0 - i / 100) for i, p in enumerate(pieces)], unk_id=0))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def _align(tok, texts, labels, **kwargs):
    enc, rows = align_labels(tok, texts, [label_ids(r, POS) for r in labels], **kwargs)
    return [tok.convert_ids_to_tokens(ids) for ids in enc["input_ids"]], rows


@pytest.mark.parametrize("trim", [True, False], ids=["trim-offsets", "raw-offsets"])
def test_gpt2_bpe_first_piece_carries_the_space(trim):
    tokens, rows = _align(gpt2_style(trim), [SENTENCE], [SENTENCE_POS], add_special_tokens=False)
    assert tokens == [["the", "Ġcat", "s", "Ġslee", "p", "Ġout", "side"]]
    assert rows == [[DET, NOUN, NOUN, VERB, VERB, ADV, ADV]]
    # A lone "Ġ" piece before a word with no merge for its first character belongs to it.
    tokens, rows = _align(gpt2_style(trim), ["the 42"], [["DET", "NUM"]], add_special_tokens=False)
    assert tokens == [["the", "Ġ", "4", "2"]]
    assert rows == [[DET, NUM, NUM, NUM]]


def test_gpt2_bos_and_eos_get_the_padding_label():
    tokens, rows = _align(gpt2_style(True, bos_eos=True), [SENTENCE], [SENTENCE_POS])
    assert tokens[0][0] == tokens[0][-1] == "<|endoftext|>"
    assert rows == [[PAD_LABEL, DET, NOUN, NOUN, VERB, VERB, ADV, ADV, PAD_LABEL]]


def test_wordpiece_continuations_punctuation_case_and_padding():
    texts = ["The Cats sleep outside.", "a dog"]
    tokens, rows = _align(wordpiece(), texts, [SENTENCE_POS, ["DET", "NOUN"]], padding=True)
    assert tokens[0] == ["[CLS]", "the", "cat", "##s", "sleep", "out", "##side", ".", "[SEP]"]
    # "outside." is one whitespace word: its "." takes the word's label.
    assert rows[0] == [PAD_LABEL, DET, NOUN, NOUN, VERB, ADV, ADV, ADV, PAD_LABEL]
    assert tokens[1] == ["[CLS]", "a", "dog", "[SEP]"] + ["[PAD]"] * 5
    assert rows[1] == [PAD_LABEL, DET, NOUN, PAD_LABEL] + [PAD_LABEL] * 5


def test_sentencepiece_word_starts_and_lone_metaspace():
    tokens, rows = _align(sentencepiece(), [SENTENCE, "the 42"], [SENTENCE_POS, ["DET", "NUM"]])
    assert tokens[0] == ["<s>", "▁the", "▁cat", "s", "▁sleep", "▁out", "side"]
    assert rows[0] == [PAD_LABEL, DET, NOUN, NOUN, VERB, ADV, ADV]
    assert tokens[1] == ["<s>", "▁the", "▁", "4", "2"]
    assert rows[1] == [PAD_LABEL, DET, NUM, NUM, NUM]


def test_truncation_cuts_labels_with_the_tokens():
    tokens, rows = _align(wordpiece(), [SENTENCE], [SENTENCE_POS], truncation=True, max_length=5)
    assert tokens[0] == ["[CLS]", "the", "cat", "##s", "[SEP]"]
    assert rows[0] == [PAD_LABEL, DET, NOUN, NOUN, PAD_LABEL]


def test_token_words_of_a_double_space():
    # "the  cats": a lone space piece not right before a word belongs to no word.
    assert token_words("the  cats", [(0, 3), (3, 4), (4, 8), (8, 9)]) == [0, None, 1, 1]


def test_unknown_labels_and_slow_tokenizers():
    assert label_ids(["NOUN", "XYZ"], POS) == [NOUN, UNK_LABEL]
    with pytest.raises(ConfigError, match="fast tokenizer"):
        align_labels(object(), [SENTENCE], [[DET] * 4])


def test_word_label_ids_check_one_label_per_word():
    assert word_label_ids(["a b", "c"], [["X", "Y"], ["Q"]], ["X", "Y"]) == [[2, 3], [UNK_LABEL]]
    with pytest.raises(DataError, match="1 label rows for 2 sentences"):
        word_label_ids(["a b", "c"], [["X", "Y"]], ["X"])
    with pytest.raises(DataError, match="1 labels for 2 words in 'a b': give one label per"):
        word_label_ids(["a b"], [["X"]], ["X"])


def test_demo_tokenizers_align_one_label_per_word_on_the_whole_corpus():
    corpus = load_demo_corpus()[:300]
    texts = [r.text for r in corpus]
    vocab = sorted({lab for r in corpus for lab in r.labels})
    ids = [label_ids(r.labels, vocab) for r in corpus]
    _, dec_rows = align_labels(make_decoder_tokenizer(texts), texts, ids, add_special_tokens=False)
    assert dec_rows == ids  # word-level decoder: one token per word
    _, enc_rows = align_labels(make_encoder_tokenizer(texts), texts, ids)
    assert [row[1:-1] for row in enc_rows] == ids  # every corpus word is one WordPiece token
    assert {row[0] for row in enc_rows} == {row[-1] for row in enc_rows} == {PAD_LABEL}


# -- spaCy (optional extra) -------------------------------------------------------------------


def test_spacy_labels_whitespace_words_by_their_first_token():
    spacy = pytest.importorskip("spacy")
    from spacy.language import Language

    tags = {"the": "DET", "dog": "NOUN", "dogs": "NOUN", "bark": "VERB", ".": "PUNCT"}

    @Language.component("lmvae_test_tagger")
    def tagger(doc):
        for token in doc:
            token.pos_ = tags.get(token.lower_, "X")
        return doc

    nlp = spacy.blank("en")
    nlp.add_pipe("lmvae_test_tagger")
    out = spacy_annotate(["The dog.", "dogs bark"], nlp, "pos")
    assert out == [["DET", "NOUN"], ["NOUN", "VERB"]]  # "dog." -> the label of "dog"
    assert spacy_annotate(["The dog."], nlp, "ent") == [["O", "O"]]
    with pytest.raises(ConfigError, match="unknown spaCy attribute 'lemma'"):
        spacy_annotate(["a"], nlp, "lemma")


def test_missing_spacy_or_pipeline_is_a_clear_error():
    try:
        import spacy  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'lmvae\[spacy\]'"):
            spacy_annotate(["a"], "en_core_web_sm")
    else:
        with pytest.raises(ConfigError, match="spaCy pipeline 'no_such_pipeline_xyz'"):
            spacy_annotate(["a"], "no_such_pipeline_xyz")


# -- a corpus as model inputs, and a config from its data -------------------------------------


def test_conditions_batch_pads_label_rows_and_picks_categories():
    cond = Conditions([["A"], ["B", "C"]], [[2], [3, 4]], torch.tensor([1, 0]))
    assert cond.labels_of([1]) == [["B", "C"]]
    batch = cond.batch([1, 0], width=3)
    assert batch["label_ids"].tolist() == [[3, 4, PAD_LABEL], [2, PAD_LABEL, PAD_LABEL]]
    assert batch["category"].tolist() == [0, 1]
    assert Conditions().batch([0], 3) == {} and Conditions().labels_of([0]) is None


def _config():
    return VAEConfig.create("enc", "dec", 8)


@pytest.mark.parametrize(
    "condition, sides",
    [("encoder", (True, False)), ("decoder", (False, True)), ("both", (True, True))],
)
def test_configure_conditions_from_labelled_data(condition, sides):
    cfg = _config()
    corpus = AnnotatedCorpus(["a b", "c"], [["Y", "X"], ["Y"]], ["p", "q"])
    out = configure_conditions(cfg, corpus, condition, "roles", category_field="family")
    assert out is corpus
    ann = cfg.annotations
    assert (ann.labels, ann.field, ann.source) == (["X", "Y"], "roles", "file")
    assert (ann.encoder, ann.decoder) == sides
    assert (cfg.prior.kind, cfg.prior.field, cfg.prior.categories) == (
        "mixture",
        "family",
        ["p", "q"],
    )


def test_configure_conditions_with_spacy_and_without_labels(monkeypatch):
    cfg = _config()
    assert configure_conditions(cfg, ["a b"]) == ["a b"]
    assert cfg.to_dict() == _config().to_dict()  # plain sentences: an unconditioned model
    monkeypatch.setattr(lmvae.conditioning, "spacy_annotate", lambda t, m, a: [tag(x) for x in t])
    out = configure_conditions(cfg, ["the cat", "a dog"], "both", spacy_attribute="dep")
    assert out.labels == [["DET", "W"], ["DET", "W"]]
    ann = cfg.annotations
    assert (ann.source, ann.spacy_attribute, ann.labels) == ("spacy", "dep", ["DET", "W"])
    with pytest.raises(ConfigError, match="already holds word labels"):
        configure_conditions(_config(), out, spacy_attribute="pos")
    with pytest.raises(ConfigError, match="unknown condition 'neither'"):
        configure_conditions(_config(), out, "neither")


def test_annotate_passes_an_unconditioned_corpus_and_checks_categories(make_vae):
    vae = make_vae()
    corpus = vae.annotate(["the cat sat"])
    assert (corpus.texts, corpus.labels, corpus.categories) == (["the cat sat"], None, None)
    mixture = make_vae(prior_kind="mixture", prior_categories=["x", "y"])
    with pytest.raises(ConfigError, match="needs the category"):
        mixture.annotate(["the cat sat"])
    with pytest.raises(ConfigError, match="category 'z' is not in the prior"):
        mixture.annotate(AnnotatedCorpus(["the cat sat"], categories=["z"]))
    assert mixture.annotate(["the cat sat"], categories=False).categories is None


# -- the conditioned model end to end -----------------------------------------------------------


def _perturb_labels(vae, seed=0):
    """Label embeddings start at zero; give them weight so the tests see their effect."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        vae.decoder.label_embed.weight[1:].copy_(torch.randn(4, 64, generator=gen))


def _vae(make_vae, encoder=True, decoder=False, **opts):
    ann = {"labels": TAGS, "encoder": encoder, "decoder": decoder}
    return make_vae("bert", "gpt2", annotations=ann, decoder_max_length=16, **opts).eval()


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
    texts, labels = CORPUS[:16], TAGGED[:16]
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
    corpus = AnnotatedCorpus(list(CORPUS), TAGGED)
    cond = prepare_conditions(vae, corpus)
    assert cond.word_labels == TAGGED and len(cond.decoder_labels) == len(CORPUS)
    cfg = TrainConfig(epochs=8, batch_size=8, progress=False, eval_decode_sentences=0, lr=1e-2)
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
    assert config["annotations"]["labels"] == TAGS
    loaded = LanguageVAE.from_pretrained(tmp_path / "m")
    assert loaded.label_vocabulary == TAGS
    a = loaded.encode(TEXTS, word_labels=TEXT_LABELS)
    torch.testing.assert_close(a, vae.encode(TEXTS, word_labels=TEXT_LABELS), atol=0, rtol=0)
    kw = {"word_labels": TEXT_LABELS, "max_new_tokens": 8}
    assert loaded.reconstruct(TEXTS, **kw) == vae.reconstruct(TEXTS, **kw)


def test_spacy_source_annotates_missing_labels(make_vae, monkeypatch):
    calls = []

    def fake(texts, model, attribute):
        calls.append((len(texts), model, attribute))
        return [tag(t) for t in texts]

    monkeypatch.setattr(lmvae.conditioning, "spacy_annotate", fake)
    vae = _vae(make_vae, annotations_source="spacy", annotations_spacy_attribute="dep")
    torch.testing.assert_close(vae.encode(TEXTS), vae.encode(TEXTS, word_labels=TEXT_LABELS))
    assert calls == [(3, "en_core_web_sm", "dep")]
