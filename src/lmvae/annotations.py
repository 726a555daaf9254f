"""Annotated corpora: per-word labels (semantic roles, POS ...) and sentence categories, read
from JSONL or CoNLL-style column files.

Words are the whitespace-separated words of a text; every word has exactly one label.  How the
labels become model inputs (label ids, sub-word alignment, spaCy labels, prior categories) is
:mod:`lmvae.conditioning`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lmvae.errors import DataError
from lmvae.textfiles import jsonl_records, read_text

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
