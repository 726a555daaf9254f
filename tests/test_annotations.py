"""lmvae.annotations: reading labelled files, and word labels aligned to the sub-word tokens of
byte-level BPE (GPT-2), WordPiece (BERT) and SentencePiece (Llama / T5) tokenizers, checked
token by token on hand-built vocabularies."""

from __future__ import annotations

import json

import pytest
from support import make_decoder_tokenizer, make_encoder_tokenizer
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertTokenizerFast, PreTrainedTokenizerFast

from lmvae.annotations import (
    PAD_LABEL,
    UNK_LABEL,
    AnnotatedCorpus,
    align_labels,
    label_ids,
    read_annotations,
    spacy_annotate,
    token_words,
)
from lmvae.demo.corpus import load_demo_corpus
from lmvae.errors import ConfigError, DataError

VOCAB = ["DET", "NOUN", "VERB", "ADV", "NUM"]
DET, NOUN, VERB, ADV, NUM = range(2, 7)  # ids: 0 padding, 1 unknown, then VOCAB
SENTENCE = "the cats sleep outside"
LABELS = ["DET", "NOUN", "VERB", "ADV"]


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
    enc, rows = align_labels(tok, texts, [label_ids(r, VOCAB) for r in labels], **kwargs)
    return [tok.convert_ids_to_tokens(ids) for ids in enc["input_ids"]], rows


@pytest.mark.parametrize("trim", [True, False], ids=["trim-offsets", "raw-offsets"])
def test_gpt2_bpe_first_piece_carries_the_space(trim):
    tokens, rows = _align(gpt2_style(trim), [SENTENCE], [LABELS], add_special_tokens=False)
    assert tokens == [["the", "Ġcat", "s", "Ġslee", "p", "Ġout", "side"]]
    assert rows == [[DET, NOUN, NOUN, VERB, VERB, ADV, ADV]]
    # A lone "Ġ" piece before a word with no merge for its first character belongs to it.
    tokens, rows = _align(gpt2_style(trim), ["the 42"], [["DET", "NUM"]], add_special_tokens=False)
    assert tokens == [["the", "Ġ", "4", "2"]]
    assert rows == [[DET, NUM, NUM, NUM]]


def test_gpt2_bos_and_eos_get_the_padding_label():
    tokens, rows = _align(gpt2_style(True, bos_eos=True), [SENTENCE], [LABELS])
    assert tokens[0][0] == tokens[0][-1] == "<|endoftext|>"
    assert rows == [[PAD_LABEL, DET, NOUN, NOUN, VERB, VERB, ADV, ADV, PAD_LABEL]]


def test_wordpiece_continuations_punctuation_case_and_padding():
    texts = ["The Cats sleep outside.", "a dog"]
    tokens, rows = _align(wordpiece(), texts, [LABELS, ["DET", "NOUN"]], padding=True)
    assert tokens[0] == ["[CLS]", "the", "cat", "##s", "sleep", "out", "##side", ".", "[SEP]"]
    # "outside." is one whitespace word: its "." takes the word's label.
    assert rows[0] == [PAD_LABEL, DET, NOUN, NOUN, VERB, ADV, ADV, ADV, PAD_LABEL]
    assert tokens[1] == ["[CLS]", "a", "dog", "[SEP]"] + ["[PAD]"] * 5
    assert rows[1] == [PAD_LABEL, DET, NOUN, PAD_LABEL] + [PAD_LABEL] * 5


def test_sentencepiece_word_starts_and_lone_metaspace():
    tokens, rows = _align(sentencepiece(), [SENTENCE, "the 42"], [LABELS, ["DET", "NUM"]])
    assert tokens[0] == ["<s>", "▁the", "▁cat", "s", "▁sleep", "▁out", "side"]
    assert rows[0] == [PAD_LABEL, DET, NOUN, NOUN, VERB, ADV, ADV]
    assert tokens[1] == ["<s>", "▁the", "▁", "4", "2"]
    assert rows[1] == [PAD_LABEL, DET, NUM, NUM, NUM]


def test_truncation_cuts_labels_with_the_tokens():
    tokens, rows = _align(wordpiece(), [SENTENCE], [LABELS], truncation=True, max_length=5)
    assert tokens[0] == ["[CLS]", "the", "cat", "##s", "[SEP]"]
    assert rows[0] == [PAD_LABEL, DET, NOUN, NOUN, PAD_LABEL]


def test_token_words_of_a_double_space():
    # "the  cats": a lone space piece not right before a word belongs to no word.
    assert token_words("the  cats", [(0, 3), (3, 4), (4, 8), (8, 9)]) == [0, None, 1, 1]


def test_unknown_labels_and_slow_tokenizers():
    assert label_ids(["NOUN", "XYZ"], VOCAB) == [NOUN, UNK_LABEL]
    with pytest.raises(ConfigError, match="fast tokenizer"):
        align_labels(object(), [SENTENCE], [[DET] * 4])


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


# -- reading files ----------------------------------------------------------------------------


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
