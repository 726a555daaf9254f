"""The commands that run a trained model: ``encode``, ``reconstruct``, ``generate`` and
``interpolate``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from lmvae.cli.common import (
    DataOpt,
    DeviceOpt,
    Format,
    FormatOpt,
    ModelArg,
    PickleOpt,
    TextFieldOpt,
    ThreadsOpt,
    TrustOpt,
    check_device,
    emit,
    load_model,
    set_threads,
)
from lmvae.errors import LmvaeError


class Strategy(str, Enum):
    greedy = "greedy"
    sample = "sample"
    beam = "beam"


StrategyOpt = Annotated[Strategy, typer.Option(help="Decoding strategy.")]
BeamsOpt = Annotated[int, typer.Option(help="Beams for --strategy beam.")]
TempOpt = Annotated[float, typer.Option(help="Sampling temperature.")]
TopKOpt = Annotated[int, typer.Option(help="Sample only from the k most likely tokens (0: all).")]
TopPOpt = Annotated[float, typer.Option(help="Nucleus sampling mass (1: all).")]
MaxTokOpt = Annotated[
    int | None, typer.Option(help="Longest output in tokens (default: the model's max length).")
]


def _generation(
    strategy: Strategy,
    num_beams: int,
    temperature: float,
    top_k: int,
    top_p: float,
    max_new_tokens: int | None,
):
    from lmvae.generation import GenerationConfig

    cfg = GenerationConfig(strategy.value, max_new_tokens, temperature, top_k, top_p, num_beams)
    cfg.validate()
    return cfg


def _read_for_model(vae, data: Path, text_field: str):
    """Sentences for a trained model, with their word labels when it reads them from files."""
    from lmvae.annotations import CONLL_SUFFIXES, read_annotations
    from lmvae.data import read_corpus

    ann = vae.config.annotations
    annotated = data.suffix.lower() in (".jsonl", ".json", *CONLL_SUFFIXES)
    if ann.enabled and ann.source == "file" and annotated:
        corpus = read_annotations(data, ann.field, None, text_field)
        texts, labels = corpus.texts, corpus.labels
    else:
        texts, labels = read_corpus(data, text_field), None
    for note in vae.codec.notes(texts, labels):
        print(f"note: {data}: {note}", file=sys.stderr)
    return texts, labels


def encode(
    model: ModelArg,
    data: DataOpt,
    sample: Annotated[
        bool, typer.Option(help="Sample z instead of taking the posterior mean.")
    ] = False,
    logvar: Annotated[bool, typer.Option(help="Also print the posterior log-variance.")] = False,
    fmt: FormatOpt = Format.jsonl,
    text_field: TextFieldOpt = "text",
    seed: Annotated[int, typer.Option()] = 0,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
) -> None:
    """Print the latent vector of each sentence."""
    import torch

    from lmvae.objective import reparameterize

    set_threads(threads)
    check_device(device)
    vae = load_model(model, device, trust_remote_code, allow_pickle)
    texts, labels = _read_for_model(vae, data, text_field)
    mu, lv = vae.posterior(texts, word_labels=labels)
    gen = torch.Generator(device=mu.device).manual_seed(seed)
    z = reparameterize(mu, lv, gen) if sample else mu
    records = []
    for i, text in enumerate(texts):
        r: dict[str, Any] = {"text": text, "z": [round(v, 6) for v in z[i].tolist()]}
        if logvar:
            r["logvar"] = [round(v, 6) for v in lv[i].tolist()]
        records.append(r)
    emit(records, fmt)


def reconstruct(
    model: ModelArg,
    data: DataOpt,
    fmt: FormatOpt = Format.text,
    sample: Annotated[
        bool, typer.Option(help="Decode a sampled z instead of the posterior mean.")
    ] = False,
    strategy: StrategyOpt = Strategy.greedy,
    num_beams: BeamsOpt = 4,
    temperature: TempOpt = 1.0,
    top_k: TopKOpt = 0,
    top_p: TopPOpt = 1.0,
    max_new_tokens: MaxTokOpt = None,
    text_field: TextFieldOpt = "text",
    seed: Annotated[int, typer.Option()] = 0,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
) -> None:
    """Encode each sentence and decode it back."""
    import torch

    set_threads(threads)
    check_device(device)
    gen_cfg = _generation(strategy, num_beams, temperature, top_k, top_p, max_new_tokens)
    vae = load_model(model, device, trust_remote_code, allow_pickle)
    texts, labels = _read_for_model(vae, data, text_field)
    gen = torch.Generator(device=vae.device).manual_seed(seed)
    outs = vae.reconstruct(texts, sample, labels, generation=gen_cfg, generator=gen)
    emit([{"text": t, "reconstruction": r} for t, r in zip(texts, outs, strict=True)], fmt)


def generate(
    model: ModelArg,
    n: Annotated[int, typer.Option("--n", "-n", help="Number of sentences.")] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    fmt: FormatOpt = Format.text,
    strategy: StrategyOpt = Strategy.greedy,
    num_beams: BeamsOpt = 4,
    temperature: TempOpt = 1.0,
    top_k: TopKOpt = 0,
    top_p: TopPOpt = 1.0,
    max_new_tokens: MaxTokOpt = None,
    category: Annotated[
        str | None, typer.Option(help="Category to generate from (mixture prior).")
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Space-separated label of each output token (label-conditioned decoder)."
        ),
    ] = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
) -> None:
    """Decode sentences from latents drawn from the prior (of one category, with --category)."""
    set_threads(threads)
    check_device(device)
    if n < 1:
        raise LmvaeError(f"--n must be >= 1, got {n}")
    gen_cfg = _generation(strategy, num_beams, temperature, top_k, top_p, max_new_tokens)
    vae = load_model(model, device, trust_remote_code, allow_pickle)
    extra = {} if labels is None else {"word_labels": [labels.split()] * n}
    texts = vae.sample_prior(n, seed=seed, generation=gen_cfg, category=category, **extra)
    emit([{"text": t} for t in texts], fmt, text_key="text")


def interpolate(
    model: ModelArg,
    start: Annotated[str, typer.Argument(help="First sentence.")],
    end: Annotated[str, typer.Argument(help="Last sentence.")],
    steps: Annotated[int, typer.Option(help="Points including both ends.")] = 5,
    mode: Annotated[str, typer.Option(help="linear or slerp.")] = "linear",
    fmt: FormatOpt = Format.text,
    strategy: StrategyOpt = Strategy.greedy,
    num_beams: BeamsOpt = 4,
    max_new_tokens: MaxTokOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
) -> None:
    """Decode evenly spaced points between the latents of two sentences."""
    set_threads(threads)
    check_device(device)
    gen_cfg = _generation(strategy, num_beams, 1.0, 0, 1.0, max_new_tokens)
    vae = load_model(model, device, trust_remote_code, allow_pickle)
    texts = vae.interpolate(start, end, steps=steps, mode=mode, generation=gen_cfg)
    records = [{"step": i, "t": round(i / (steps - 1), 4), "text": t} for i, t in enumerate(texts)]
    emit(records, fmt, text_key="text")
