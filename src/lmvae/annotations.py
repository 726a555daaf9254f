"""Per-word annotations (semantic roles, POS ...) and sentence categories, read from files or
made by spaCy, and aligned to each tokenizer's sub-word tokens.

Words are the whitespace-separated words of a text; every word has exactly one label.  The
alignment goes through character offsets of a fast tokenizer, so it holds for byte-level BPE
(GPT-2: a word's first piece carries the leading space), WordPiece (``##`` continuations) and
SentencePiece (``▁`` word starts) alike: each token takes the label of the word holding its first
non-space character; a token made only of the space before a word takes that word's label; special
tokens (CLS, SEP, BOS, EOS) and padding take the padding label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from lmvae.errors import ConfigError, DataError
from lmvae.textfiles import jsonl_records, read_text

#: Label id of padding, special tokens and "no label" positions.
PAD_LABEL = 0
#: Label id of a label the model's vocabulary does not hold.
UNK_LABEL = 1
#: CoNLL-U column names, for files with ten columns and no ``# global.columns`` header.
CONLLU_COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
CONLL_SUFFIXES = (".conll", ".conllu", ".conll09", ".conll12", ".col")


@dataclass
class AnnotatedCorpus:
    """Sentences with one label per whitespace word and/or a category per sentence."""

    texts: list[str]
    labels: list[list[str]] | None = None
    categories: list[str] | None = None

    def __post_init__(self) -> None:
        if self.labels is not None:
            if len(self.labels) != len(self.texts):
                raise DataError(f"{len(self.labels)} label rows for {len(self.texts)} sentences")
            for n, (text, row) in enumerate(zip(self.texts, self.labels, strict=True), 1):
                words = len(text.split())
                if len(row) != words:
                    raise DataError(
                        f"sentence {n} has {words} words but {len(row)} labels: {text!r}"
                    )
        if self.categories is not None and len(self.categories) != len(self.texts):
            raise DataError(f"{len(self.categories)} categories for {len(self.texts)} sentences")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> AnnotatedCorpus:
        pick = list(indices)
        return AnnotatedCorpus(
            [self.texts[i] for i in pick],
            None if self.labels is None else [self.labels[i] for i in pick],
            None if self.categories is None else [self.categories[i] for i in pick],
        )

    def label_vocabulary(self) -> list[str]:
        """Sorted distinct word labels."""
        return sorted({lab for row in self.labels or [] for lab in row})

    def category_vocabulary(self) -> list[str]:
        """Sorted distinct categories."""
        return sorted(set(self.categories or []))


def as_corpus(data: Sequence[str] | AnnotatedCorpus) -> AnnotatedCorpus:
    """Plain sentences become an unannotated corpus; a corpus is returned as it is."""
    if isinstance(data, AnnotatedCorpus):
        return data
    return AnnotatedCorpus(list(data))


# -- reading ----------------------------------------------------------------------------------


def read_annotations(
    path: str | Path,
    label_field: str | None = "labels",
    category_field: str | None = None,
    text_field: str = "text",
) -> AnnotatedCorpus:
    """Read a JSONL file (``{"text": ..., "labels": [...], "category": ...}`` per line) or a
    CoNLL-style column file (one word per line, blank lines between sentences).

    In a column file ``label_field`` is a column index (0-based, negative from the end) or a
    name from a ``# global.columns = ...`` header (CoNLL-U Plus) or from the CoNLL-U columns
    (ID FORM ... DEPREL ...) of a ten-column file; the words are the FORM column of CoNLL-U
    files and the first column otherwise, and ``# key = value`` comments before a sentence give
    its sentence-level fields (the category).  ``label_field=None`` reads no word labels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotation file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path, label_field, category_field, text_field)
    if suffix in CONLL_SUFFIXES:
        return _read_columns(path, label_field, category_field)
    raise DataError(
        f"{path}: annotations are read from .jsonl / .json or CoNLL column files "
        f"({', '.join(CONLL_SUFFIXES)}), not {suffix or 'a file without suffix'}"
    )


def _read_jsonl(
    path: Path, label_field: str | None, category_field: str | None, text_field: str
) -> AnnotatedCorpus:
    texts: list[str] = []
    labels: list[list[str]] = []
    categories: list[str] = []
    if path.suffix.lower() == ".json":
        try:
            records = json.loads(read_text(path))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg})") from None
        records = records if isinstance(records, list) else [records]
        numbered = [(f"{path}:{n}", record) for n, record in enumerate(records, 1)]
    else:
        numbered = jsonl_records(path)
    for where, record in numbered:
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object")
        text = record.get(text_field)
        if not isinstance(text, str):
            raise DataError(f"{where}: no string field {text_field!r}")
        if not text.strip():
            continue
        texts.append(text.strip())
        if label_field is not None:
            row = record.get(label_field)
            if not isinstance(row, list):
                raise DataError(
                    f"{where}: no label field {label_field!r} (fields: {', '.join(record)})"
                )
            words = len(text.split())
            if len(row) != words:
                raise DataError(f"{where}: {len(row)} labels for {words} words in {text!r}")
            labels.append([str(x) for x in row])
        if category_field is not None:
            if category_field not in record:
                raise DataError(
                    f"{where}: no category field {category_field!r} (fields: {', '.join(record)})"
                )
            categories.append(str(record[category_field]))
    if not texts:
        raise DataError(f"annotation file {path} holds no sentences")
    return AnnotatedCorpus(
        texts,
        labels if label_field is not None else None,
        categories if category_field is not None else None,
    )


def _column_index(spec: str, names: Sequence[str] | None, width: int, where: str) -> int:
    """A column given by (negative) index or name -> its index in rows of ``width`` columns."""
    try:
        index = int(spec)
    except ValueError:
        if names is not None and spec.upper() in [c.upper() for c in names]:
            return [c.upper() for c in names].index(spec.upper())
        known = f" (columns: {' '.join(names)})" if names else " (the file names no columns)"
        raise DataError(f"{where}: unknown label column {spec!r}{known}") from None
    if not -width <= index < width:
        raise DataError(f"{where}: label column {index} out of range for {width} columns")
    return index % width


def _read_columns(
    path: Path, label_field: str | None, category_field: str | None
) -> AnnotatedCorpus:
    names: list[str] | None = None
    texts: list[str] = []
    labels: list[list[str]] = []
    categories: list[str] = []
    words: list[str] = []
    row_labels: list[str] = []
    meta: dict[str, str] = {}
    start = 0

    def finish(line_no: int) -> None:
        nonlocal words, row_labels, meta
        if words:
            texts.append(" ".join(words))
            labels.append(row_labels)
            if category_field is not None:
                if category_field not in meta:
                    raise DataError(
                        f"{path}:{start}: sentence has no '# {category_field} = ...' comment"
                    )
                categories.append(meta[category_field])
        words, row_labels, meta = [], [], {}

    for n, raw in enumerate(read_text(path).split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            finish(n)
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition("=")
            if sep:
                key = key.strip()
                if key == "global.columns":
                    names = value.split()
                else:
                    meta[key] = value.strip()
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        file_names = names or (list(CONLLU_COLUMNS) if len(cols) == 10 else None)
        upper = [c.upper() for c in file_names or []]
        if "ID" in upper and upper.index("ID") < len(cols):
            ident = cols[upper.index("ID")]
            if "-" in ident or "." in ident:  # CoNLL-U multiword ranges and empty nodes
                continue
        word_col = upper.index("FORM") if "FORM" in upper else 0
        if not words:
            start = n
        if word_col >= len(cols) or not cols[word_col].strip():
            raise DataError(f"{path}:{n}: no word in column {word_col}")
        words.append(cols[word_col])
        if label_field is not None:
            index = _column_index(str(label_field), file_names, len(cols), f"{path}:{n}")
            row_labels.append(cols[index])
    finish(0)
    if not texts:
        raise DataError(f"annotation file {path} holds no sentences")
    return AnnotatedCorpus(
        texts,
        labels if label_field is not None else None,
        categories if category_field is not None else None,
    )


# -- alignment --------------------------------------------------------------------------------


def label_ids(row: Sequence[str], vocabulary: Sequence[str]) -> list[int]:
    """Word labels -> ids: labels of the vocabulary from 2, anything else UNK_LABEL."""
    index = {lab: i + 2 for i, lab in enumerate(vocabulary)}
    return [index.get(lab, UNK_LABEL) for lab in row]


def token_words(
    text: str, offsets: Sequence[tuple[int, int]], special: Sequence[int] | None = None
) -> list[int | None]:
    """The whitespace-word index of each token (None: special token or no word).

    offsets are a fast tokenizer's character spans of the tokens of ``text``; special (0/1 per
    token) marks tokens the tokenizer added.
    """
    owner = [-1] * len(text)  # character -> word index
    starts = {}
    for w, match in enumerate(re.finditer(r"\S+", text)):
        owner[match.start() : match.end()] = [w] * (match.end() - match.start())
        starts[match.start()] = w
    out: list[int | None] = []
    for t, (s, e) in enumerate(offsets):
        if special is not None and special[t]:
            out.append(None)
            continue
        word = next((owner[c] for c in range(s, min(e, len(text))) if owner[c] >= 0), None)
        if word is None:
            # A piece made only of the space before a word (SentencePiece's lone "▁") or with
            # an empty span belongs to the word that starts right after it, if one does.
            word = starts.get(e)
        out.append(word)
    return out


def align_labels(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    word_labels: Sequence[Sequence[int]],
    **tokenizer_kwargs,
) -> tuple[dict, list[list[int]]]:
    """Tokenise texts and give each token the label id of its word (PAD_LABEL for special
    tokens and padding).

    ``tokenizer_kwargs`` are those the model tokenises with (special tokens, truncation,
    padding), so the labels line up with exactly the tokens the model sees.  Returns the
    tokenizer's output and one label row per text, as long as its ``input_ids`` row.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"aligning word labels needs a fast tokenizer (character offsets); "
            f"{type(tokenizer).__name__} is not one"
        )
    enc = tokenizer(
        list(texts),
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        **tokenizer_kwargs,
    )
    rows = []
    for i, (text, labels) in enumerate(zip(texts, word_labels, strict=True)):
        offsets = [tuple(int(x) for x in o) for o in enc["offset_mapping"][i]]
        special = [int(x) for x in enc["special_tokens_mask"][i]]
        if "attention_mask" in enc:
            special = [
                s or not int(m) for s, m in zip(special, enc["attention_mask"][i], strict=True)
            ]
        words = token_words(text, offsets, special)
        rows.append([PAD_LABEL if w is None else int(labels[w]) for w in words])
    return enc, rows


# -- spaCy ------------------------------------------------------------------------------------


def spacy_annotate(
    texts: Sequence[str], nlp: object | str = "en_core_web_sm", attribute: str = "pos"
) -> list[list[str]]:
    """One label per whitespace word from a spaCy pipeline (an object or a package name):
    ``pos`` (universal POS), ``tag`` (fine tag), ``dep`` (dependency relation) or ``ent``
    (entity type, ``O`` outside entities).  A word split by spaCy ("dog." -> "dog", ".") takes
    the label of its first spaCy token."""
    if isinstance(nlp, str):
        try:
            import spacy
        except ImportError:
            raise ConfigError(
                "on-the-fly annotation needs spaCy: pip install 'lmvae[spacy]' and "
                f"python -m spacy download {nlp}"
            ) from None
        try:
            nlp = spacy.load(nlp)
        except OSError:
            raise ConfigError(
                f"spaCy pipeline {nlp!r} is not installed: python -m spacy download {nlp}"
            ) from None
    getters = {
        "pos": lambda t: t.pos_,
        "tag": lambda t: t.tag_,
        "dep": lambda t: t.dep_,
        "ent": lambda t: t.ent_type_ or "O",
    }
    if attribute not in getters:
        raise ConfigError(f"unknown spaCy attribute {attribute!r}: use {', '.join(getters)}")
    get = getters[attribute]
    out = []
    for text, doc in zip(texts, nlp.pipe(list(texts)), strict=True):
        offsets = [(t.idx, t.idx + len(t.text)) for t in doc]
        words = token_words(text, offsets)
        row: list[str | None] = [None] * len(text.split())
        for token, w in zip(doc, words, strict=True):
            if w is not None and row[w] is None:
                row[w] = get(token) or "O"
        out.append([lab or "O" for lab in row])
    return out
