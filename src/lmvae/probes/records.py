"""Probe data: sentences with optional per-word role labels and per-sentence labels.

The probes read the same corpus files as training (one sentence per line, JSONL, CSV/TSV), and
more: in JSONL a list field (default ``labels``) holds one label per whitespace word (semantic
roles, POS ...), and every other scalar field (``template``, ``topic`` ...) becomes a
per-sentence label; in CSV/TSV every column but the text one is a sentence label. ``"demo"``
names the bundled demo corpus with its role labels and template families.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..textfiles import jsonl_records, read_text

__all__ = ["LabelledProbeModel", "ProbeData", "load_probe_data", "model_needs"]


@dataclass
class ProbeData:
    """Sentences, their optional per-word labels and per-sentence labels, row-aligned."""

    texts: list[str]
    roles: list[list[str]] | None = None
    labels: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.texts)
        if self.roles is not None:
            if len(self.roles) != n:
                raise DataError(f"{len(self.roles)} rows of word labels for {n} sentences")
            for i, (text, row) in enumerate(zip(self.texts, self.roles, strict=True)):
                if len(row) != len(text.split()):
                    raise DataError(
                        f"sentence {i + 1} has {len(text.split())} words but {len(row)} word "
                        f"labels: {text!r}"
                    )
        for name, values in self.labels.items():
            if len(values) != n:
                raise DataError(f"label {name!r} has {len(values)} values for {n} sentences")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> ProbeData:
        """The rows at ``indices``, in that order."""
        return ProbeData(
            [self.texts[i] for i in indices],
            None if self.roles is None else [self.roles[i] for i in indices],
            {k: [v[i] for i in indices] for k, v in self.labels.items()},
        )


def _demo() -> ProbeData:
    from ..demo.corpus import load_demo_corpus

    records = load_demo_corpus()
    return ProbeData(
        [r.text for r in records],
        [list(r.labels) for r in records],
        {"template": [r.template for r in records]},
    )


def _jsonl(path: Path, text_field: str, roles_field: str) -> ProbeData:
    texts: list[str] = []
    roles: list[list[str]] = []
    labels: dict[str, list[str]] = {}
    for where, record in jsonl_records(path):
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise DataError(f"{where}: no text field {text_field!r}")
        texts.append(record[text_field].strip())
        row_roles = record.get(roles_field)
        if row_roles is not None:
            if not isinstance(row_roles, list):
                raise DataError(f"{where}: {roles_field!r} must be a list of per-word labels")
            roles.append([str(v) for v in row_roles])
        for key, value in record.items():
            if key not in (text_field, roles_field) and isinstance(value, str | int | bool):
                labels.setdefault(key, [])
                labels[key].append(str(value))
    if roles and len(roles) != len(texts):
        raise DataError(
            f"{path}: {roles_field!r} is given for only {len(roles)} of {len(texts)} rows"
        )
    partial = [k for k, v in labels.items() if len(v) != len(texts)]
    for key in partial:  # a label every row does not have cannot be probed
        del labels[key]
    return ProbeData(texts, roles or None, labels)


def _table(path: Path, text_field: str) -> ProbeData:
    delimiter = "," if path.suffix == ".csv" else "\t"
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if reader.fieldnames is None or text_field not in reader.fieldnames:
            raise DataError(f"{path}: no {text_field!r} column in the header")
        rows = list(reader)
    texts = [(r[text_field] or "").strip() for r in rows]
    labels = {k: [(r[k] or "") for r in rows] for k in reader.fieldnames if k != text_field}
    return ProbeData(texts, None, labels)


def load_probe_data(
    source: str | Path, text_field: str = "text", roles_field: str = "labels"
) -> ProbeData:
    """Read probe sentences and labels from ``source`` (a file, or ``"demo"``)."""
    if str(source) == "demo":
        return _demo()
    path = Path(source)
    if not path.is_file():
        raise DataError(f"probe data not found: {path}")
    if path.suffix == ".jsonl":
        data = _jsonl(path, text_field, roles_field)
    elif path.suffix in (".csv", ".tsv"):
        data = _table(path, text_field)
    else:
        texts = [line.strip() for line in read_text(path).splitlines()]
        data = ProbeData([t for t in texts if t])
    keep = [i for i, t in enumerate(data.texts) if t]
    if not keep:
        raise DataError(f"probe data has no sentences: {path}")
    return data if len(keep) == len(data) else data.subset(keep)


def model_needs(vae: Any) -> dict[str, Any]:
    """What a model must be given beyond text: ``{"word_labels"`` (its encoder reads per-word
    labels the caller gives), ``"decoder_labels"`` (its decoder takes labels, which it may
    also generate without when trained with label dropout), ``"label_dropout"``,
    ``"labels"`` (the vocabulary), ``"category"`` (the sentence label of a mixture prior, or
    None) and ``"categories"``}``."""
    config = getattr(vae, "config", None)
    ann = getattr(config, "annotations", None)
    prior = getattr(config, "prior", None)
    labelled = bool(ann is not None and ann.enabled)
    mixture = prior is not None and prior.kind == "mixture"
    return {
        "word_labels": labelled and bool(ann.encoder) and ann.source == "file",
        "decoder_labels": labelled and bool(ann.decoder),
        "label_dropout": float(ann.decoder_dropout) if labelled else 0.0,
        "labels": list(ann.labels) if labelled else [],
        "category": prior.field if mixture else None,
        "categories": list(prior.categories) if mixture else [],
    }


class LabelledProbeModel:
    """A conditioned model seen through the probes' text-only API: ``posterior`` and ``encode``
    look up each probe sentence's word labels, so every probe works unchanged."""

    def __init__(self, vae: Any, data: ProbeData):
        self._vae = vae
        self._rows = dict(zip(data.texts, data.roles or [], strict=False))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vae, name)

    def _labels(self, texts: Sequence[str]) -> list[list[str]]:
        missing = [t for t in texts if t not in self._rows]
        if missing:
            raise ConfigError(
                f"no word labels for {missing[0]!r}: the model is conditioned on them"
            )
        return [self._rows[t] for t in texts]

    def posterior(self, texts: Sequence[str], batch_size: int = 64) -> Any:
        return self._vae.posterior(texts, batch_size, word_labels=self._labels(texts))

    def encode(self, texts: Sequence[str], sample: bool = False, batch_size: int = 64,
               generator: Any = None) -> Any:  # fmt: skip
        return self._vae.encode(texts, sample, batch_size, generator, self._labels(texts))
