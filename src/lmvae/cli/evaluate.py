"""``lmvae evaluate``: every held-out figure of a trained model
(:func:`lmvae.evaluation.evaluate_model`) as one JSON document, with a short summary on stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from lmvae.cli.common import (
    DataOpt,
    DeviceOpt,
    ModelArg,
    PickleOpt,
    TextFieldOpt,
    ThreadsOpt,
    TrustOpt,
    check_device,
    check_writable,
    load_model,
    set_threads,
)
from lmvae.errors import LmvaeError


def evaluate(
    model: ModelArg,
    data: DataOpt,
    out: Annotated[
        Path | None, typer.Option(help="JSON file for the figures (default: standard output).")
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            help="Also the importance-weighted NLL, mutual information and prior-sample "
            "diversity and perplexity (slower)."
        ),
    ] = True,
    max_sentences: Annotated[
        int, typer.Option(help="Evaluate on the first N sentences of --data.")
    ] = 1000,
    text_field: TextFieldOpt = "text",
    seed: Annotated[int, typer.Option(help="Seed of the sampled figures of --full.")] = 0,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
) -> None:
    """Evaluate a trained model on held-out sentences: BLEU, loop and EOS rates, NLLs, KL, ..."""
    import time

    from lmvae.data import read_corpus
    from lmvae.evaluation import evaluate_model

    started = time.perf_counter()
    set_threads(threads)
    if max_sentences < 1:
        raise LmvaeError(f"--max-sentences must be >= 1, got {max_sentences}")
    if out is not None:
        check_writable(out, folder=False)
    check_device(device)
    texts = read_corpus(data, text_field)[:max_sentences]
    vae = load_model(model, device, trust_remote_code, allow_pickle)
    _check_unconditioned(vae)
    figures = evaluate_model(vae, texts, full=full, seed=seed)
    document = json.dumps(figures, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        sys.stdout.write(document)
    else:
        _write_atomic(out, document)
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    say(f"{len(texts)} sentences in {time.perf_counter() - started:.0f} s")
    for line in summary(figures, vae.latent_size):
        say(line)
    if out is not None:
        say(f"figures written to {out}")


def summary(figures: dict, latent_size: int) -> list[str]:
    """A few lines for a person: decoding, the bound and its parts, and the --full extras."""
    f = figures
    lines = [
        f"bleu {f['bleu']:.3f}  exact match {f['exact_match']:.3f}  "
        f"loop rate {f['loop_rate']:.3f}  eos rate {f['eos_rate']:.3f}",
        f"recon nll {f['recon_nll']:.2f}  kl {f['kl']:.2f}  neg elbo {f['neg_elbo']:.2f}  "
        f"decoder nll {f['decoder_nll']:.2f}  (nats per sentence)",
        f"active units {f['active_units']:.0f} of {latent_size}",
    ]
    extras = [
        ("mutual information", "mutual_information", ".2f"),
        ("iw nll", "iw_nll", ".2f"),
        ("prior distinct-2", "prior_distinct_2", ".3f"),
        ("prior decoder perplexity", "prior_decoder_perplexity", ".1f"),
    ]
    full = [f"{name} {f[key]:{spec}}" for name, key, spec in extras if key in f]
    if full:
        lines.append("  ".join(full))
    return lines


def _check_unconditioned(vae) -> None:
    """evaluate_model reads plain sentences: a conditioned model would need their labels."""
    cfg = vae.config
    if cfg.annotations.enabled:
        raise LmvaeError(
            f"this model is conditioned on word labels ({cfg.annotations.field!r}); lmvae "
            "evaluate takes unconditioned models: use lmvae.evaluation.evaluate with an "
            "AnnotatedCorpus"
        )
    if cfg.prior.kind != "gaussian":
        raise LmvaeError(
            f"this model has a {cfg.prior.kind} prior over {cfg.prior.field!r}; lmvae evaluate "
            "takes Gaussian-prior models: use lmvae.evaluation.evaluate with an AnnotatedCorpus"
        )


def _write_atomic(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: a reader never sees half a file."""
    from lmvae.textfiles import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))
    except OSError as e:
        raise LmvaeError(f"cannot write {path}: {e.strerror or e}") from None
