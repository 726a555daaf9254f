"""The study's corpus, read once and split once, so that every cell sees the same sentences:
training and held-out sides as :class:`~lmvae.probes.records.ProbeData` (text, optional word
labels, sentence labels that serve as disentanglement factors)."""

from __future__ import annotations

from dataclasses import dataclass

from lmvae.annotations import AnnotatedCorpus
from lmvae.errors import ConfigError, DataError
from lmvae.grid.study import Condition, Study
from lmvae.probes.records import ProbeData, load_probe_data

__all__ = ["GridData", "cell_corpus", "load_data"]

SPLIT_SEED = 0  # one split for the whole study, whatever the cells' seeds


@dataclass
class GridData:
    """Training and held-out sentences of a study, with what is known about them."""

    train: ProbeData
    heldout: ProbeData
    source: str


def _wordnet(study: Study) -> GridData:
    from lmvae.wordnet import build_corpus, sentence_factors

    root = study.path(study.data.wordnet_root)
    built = build_corpus(root, seed=SPLIT_SEED)
    factors = sentence_factors(root)

    def with_factors(texts: list[str]) -> ProbeData:
        rows = [factors[t.lower()] for t in texts]
        return ProbeData(texts, None, {k: [r[k] for r in rows] for k in ("pos", "lexfile")})

    return GridData(with_factors(built.train), with_factors(built.heldout), f"wordnet:{root}")


def _split(data: ProbeData, fraction: float, max_heldout: int) -> tuple[ProbeData, ProbeData]:
    from lmvae.data import split_corpus

    index = list(range(len(data)))
    train, held = split_corpus(index, fraction, max_heldout, SPLIT_SEED)  # type: ignore[arg-type]
    return data.subset(train), data.subset(held)


def load_data(study: Study) -> GridData:
    """Read (or build) the corpus and cut it to the study's sizes."""
    spec = study.data
    if spec.corpus == "wordnet":
        data = _wordnet(study)
    else:
        path = study.path(spec.path or "")
        full = load_probe_data(path, spec.text_field, spec.labels_field)
        if spec.heldout is not None:
            held = load_probe_data(study.path(spec.heldout), spec.text_field, spec.labels_field)
        else:
            full, held = _split(full, spec.heldout_fraction, max(spec.heldout_sentences, 1))
        data = GridData(full, held, str(path))
    if spec.train_sentences > 0:
        data.train = data.train.subset(range(min(spec.train_sentences, len(data.train))))
    data.heldout = data.heldout.subset(range(min(spec.heldout_sentences, len(data.heldout))))
    if len(data.train) < 2 or len(data.heldout) < 1:
        raise DataError(
            f"{data.source}: {len(data.train)} training and {len(data.heldout)} held-out "
            "sentences; a study needs at least 2 and 1"
        )
    return data


def cell_corpus(data: ProbeData, name: str, condition: Condition) -> list[str] | AnnotatedCorpus:
    """What a cell of ``condition`` trains or is evaluated on: plain sentences, or sentences
    with the data's word labels (spaCy's are made by the model's config instead)."""
    if condition.labels is None or condition.spacy is not None:
        return list(data.texts)
    if data.roles is None:
        raise ConfigError(
            f"condition {name!r} needs word labels and the data has none: give JSONL with a "
            'per-word labels field, or set spacy = "pos" in the condition'
        )
    return AnnotatedCorpus(list(data.texts), [list(r) for r in data.roles])
