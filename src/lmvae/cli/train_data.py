"""How ``lmvae train`` reads its data: a corpus in memory (plain or annotated, split for
held-out sentences) or streamed, and the options for corpora larger than memory (``--stream``,
``--max-steps``) and for encoder features kept on disk (``--feature-cache``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from lmvae.config import VAEConfig
from lmvae.errors import LmvaeError
from lmvae.train_config import TrainConfig

StreamOpt = Annotated[
    bool,
    typer.Option(
        help="Read --data (.txt, one sentence per line, or .jsonl) lazily through an index of "
        "line offsets instead of whole: for corpora larger than memory.  Without --eval-data, "
        "a line is held out when a hash of its text falls under --eval-fraction (at most "
        "1000 lines)."
    ),
]
MaxStepsOpt = Annotated[
    int,
    typer.Option(
        help="Stop after N optimizer steps (0: after --epochs); the LR and beta schedules span "
        "N steps and --epochs is ignored."
    ),
]
FeatureCacheOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder caching the frozen encoder's features on disk, reused by later epochs, "
        "runs and processes with the same encoder settings."
    ),
]
FeatureCacheGbOpt = Annotated[
    float, typer.Option(help="Bound on --feature-cache (GiB); the oldest shards go first.")
]
FeatureCacheMbOpt = Annotated[
    int,
    typer.Option(
        help="Bound on the encoder features kept in memory (MiB); lower it for a stream "
        "larger than memory."
    ),
]
DEFAULTS = {
    "max_steps": TrainConfig.max_steps,
    "feature_cache_max_gb": TrainConfig.feature_cache_max_gb,
    "feature_cache_mb": TrainConfig.feature_cache_mb,
}


def check_stream_options(stream: bool, data: Path | None, plain: bool) -> None:
    """``--stream`` reads plain sentences from --data: refused with labels or categories."""
    if not stream:
        return
    if data is None:
        raise LmvaeError("--stream reads the file given with --data")
    if not plain:
        raise LmvaeError(
            "--stream reads plain sentences: --annotations, --spacy and --prior mixture need "
            "the corpus in memory (train without --stream)"
        )


def read_stream(data: Path, eval_data: Path | None, text_field: str, config: TrainConfig):
    """The training sentences of ``data`` as a :class:`lmvae.streaming.LineCorpus` and the
    held-out ones (from ``eval_data``, else the hash split), with a line saying so."""
    from lmvae.data import read_corpus
    from lmvae.streaming import open_stream
    from lmvae.training.tracking import LOGGER

    started = time.perf_counter()
    fraction = 0.0 if eval_data is not None else config.eval_fraction
    train, held_out = open_stream(data, text_field, fraction, config.max_eval_sentences)
    if eval_data is not None:
        held_out = read_corpus(eval_data, text_field)
    LOGGER.info(
        f"indexed {len(train):,} sentences of {data} in {time.perf_counter() - started:.1f} s "
        f"({train.offsets.nbytes / 2**20:.1f} MiB of line offsets); "
        f"{len(held_out)} held out{' by hash' if eval_data is None else ''}"
    )
    return train, held_out


def read_in_memory(
    vae_cfg: VAEConfig,
    train_cfg: TrainConfig,
    source: Path,
    eval_data: Path | None,
    labels: str | None,
    category: str | None,
    text_field: str,
    conditions: tuple[str, str, str | None, str],
):
    """The corpus read whole, its conditions set in ``vae_cfg`` (``conditions``: where labels
    enter, their field, spaCy attribute and pipeline), and the held-out sentences (from
    ``eval_data``, else a seeded split)."""
    from lmvae.conditioning import configure_conditions

    corpus = _read_data(source, labels, category, text_field)
    eval_corpus = None if eval_data is None else _read_data(eval_data, labels, category, text_field)
    condition, label_field, spacy, spacy_model = conditions
    corpus = configure_conditions(
        vae_cfg, corpus, condition, label_field, spacy, spacy_model, category
    )
    if eval_corpus is not None:
        return corpus, eval_corpus
    seed, eval_fraction = train_cfg.seed, train_cfg.eval_fraction
    return _split(corpus, eval_fraction, train_cfg.max_eval_sentences, seed)


def _read_data(path: Path, label_field: str | None, category_field: str | None, text_field: str):
    """Plain sentences, or an AnnotatedCorpus when labels or categories are asked for."""
    from lmvae.annotations import read_annotations
    from lmvae.data import read_corpus

    if label_field is None and category_field is None:
        return read_corpus(path, text_field)
    return read_annotations(path, label_field, category_field, text_field)


def _split(corpus, eval_fraction: float, max_eval: int, seed: int):
    from lmvae.annotations import AnnotatedCorpus
    from lmvae.data import split_corpus

    if not isinstance(corpus, AnnotatedCorpus):
        return split_corpus(corpus, eval_fraction, max_eval, seed)
    index = list(range(len(corpus)))
    train_idx, eval_idx = split_corpus(index, eval_fraction, max_eval, seed)
    return corpus.subset(train_idx), corpus.subset(eval_idx)
