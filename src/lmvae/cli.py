"""The ``lmvae`` command line: thin wrappers that parse, call the library and print.

Every command that prints results takes ``--format text|jsonl|json``.  Bad input ends with a
one-line ``error: ...`` on stderr and exit code 2, never a traceback from inside torch.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from lmvae.config import DecoderConfig, EncoderConfig, TrainConfig, VAEConfig
from lmvae.errors import LmvaeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Variational autoencoders made from frozen pretrained language models.",
)


class Format(str, Enum):
    text = "text"
    jsonl = "jsonl"
    json = "json"


class Condition(str, Enum):
    encoder = "encoder"
    decoder = "decoder"
    both = "both"


class Prior(str, Enum):
    gaussian = "gaussian"
    mixture = "mixture"


class Injection(str, Enum):
    prefix = "prefix"
    per_position = "per_position"
    memory = "memory"


class Strategy(str, Enum):
    greedy = "greedy"
    sample = "sample"
    beam = "beam"


def _emit(records: list[dict[str, Any]], fmt: Format, text_key: str | None = None) -> None:
    """Print records as JSON lines, one JSON array, or plain text (tab-separated values)."""
    if fmt is Format.jsonl:
        for r in records:
            print(json.dumps(r, ensure_ascii=False))
    elif fmt is Format.json:
        print(json.dumps(records, ensure_ascii=False, indent=2))
    else:
        for r in records:
            if text_key is not None:
                print(r[text_key])
            else:
                print("\t".join(str(v) for v in r.values()))


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _load(model: str, device: str | None):
    from lmvae.model import LanguageVAE

    return LanguageVAE.from_pretrained(model, device=device)


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


ModelArg = Annotated[
    str, typer.Argument(help="A folder written by `lmvae train` / save_pretrained, or a hub id.")
]
DataOpt = Annotated[
    Path,
    typer.Option("--data", help="Sentences: .txt (one per line), .jsonl, .json, .csv or .tsv."),
]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
DeviceOpt = Annotated[str | None, typer.Option(help="torch device, e.g. cpu or cuda:0.")]
ThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads for torch.")]
StrategyOpt = Annotated[Strategy, typer.Option(help="Decoding strategy.")]
BeamsOpt = Annotated[int, typer.Option(help="Beams for --strategy beam.")]
TempOpt = Annotated[float, typer.Option(help="Sampling temperature.")]
TopKOpt = Annotated[int, typer.Option(help="Sample only from the k most likely tokens (0: all).")]
TopPOpt = Annotated[float, typer.Option(help="Nucleus sampling mass (1: all).")]
MaxTokOpt = Annotated[
    int | None, typer.Option(help="Longest output in tokens (default: the model's max length).")
]
TextFieldOpt = Annotated[
    str, typer.Option(help="Field or column holding the text in .jsonl/.json/.csv data.")
]


@app.command()
def train(
    encoder: Annotated[str, typer.Option(help="Encoder LM: hub id or local folder.")],
    decoder: Annotated[str, typer.Option(help="Causal decoder LM: hub id or local folder.")],
    out: Annotated[Path, typer.Option(help="Run folder: best/, last/ and history.jsonl go here.")],
    data: Annotated[
        Path | None,
        typer.Option(help="Sentences: .txt (one per line), .jsonl, .json, .csv or .tsv."),
    ] = None,
    annotations: Annotated[
        Path | None,
        typer.Option(
            help="Annotated sentences instead of --data: JSONL with one label per word, or a "
            "CoNLL-style column file; the model is conditioned on the labels."
        ),
    ] = None,
    label_field: Annotated[
        str, typer.Option(help="JSONL field, or CoNLL column (index or name), of the labels.")
    ] = "labels",
    condition: Annotated[
        Condition, typer.Option(help="Where the labels enter: encoder, decoder or both.")
    ] = Condition.encoder,
    spacy: Annotated[
        str | None,
        typer.Option(help="Annotate on the fly with spaCy instead: pos, tag, dep or ent."),
    ] = None,
    spacy_model: Annotated[str, typer.Option(help="spaCy pipeline for --spacy.")] = (
        "en_core_web_sm"
    ),
    prior: Annotated[
        Prior, typer.Option(help="gaussian, or mixture: one learned Gaussian per category.")
    ] = Prior.gaussian,
    prior_label: Annotated[
        str | None,
        typer.Option(
            help="Sentence field (JSONL key, or '# key = value' in CoNLL) of the category."
        ),
    ] = None,
    epochs: Annotated[int, typer.Option()] = TrainConfig.epochs,
    latent_size: Annotated[int, typer.Option()] = VAEConfig.latent_size,
    batch_size: Annotated[int, typer.Option()] = TrainConfig.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate of AdamW.")] = TrainConfig.lr,
    eval_data: Annotated[
        Path | None, typer.Option(help="Held-out sentences (default: a split of --data).")
    ] = None,
    eval_fraction: Annotated[float, typer.Option()] = TrainConfig.eval_fraction,
    encoder_layer: Annotated[
        str, typer.Option(help="Hidden state to pool: index (0 = embeddings, -1 = last) or 'mix'.")
    ] = str(EncoderConfig.layer),
    pooling: Annotated[str, typer.Option(help="mean, cls or last.")] = EncoderConfig.pooling,
    normalize: Annotated[bool, typer.Option(help="L2-normalise the pooled vector.")] = False,
    num_slots: Annotated[
        int, typer.Option(help="Injected K/V slots per decoder layer.")
    ] = DecoderConfig.num_slots,
    rank: Annotated[
        int, typer.Option(help="Rank of the z -> K/V projection (0: full).")
    ] = DecoderConfig.rank,
    embed_injection: Annotated[
        bool, typer.Option(help="Also add z to every input embedding.")
    ] = False,
    injection: Annotated[
        Injection,
        typer.Option(help="prefix (K/V slots), per_position (one slot per position), memory."),
    ] = Injection.prefix,
    lora_decoder: Annotated[bool, typer.Option(help="LoRA adapters on the decoder.")] = False,
    lora_encoder: Annotated[bool, typer.Option(help="LoRA adapters on the encoder.")] = False,
    lora_rank: Annotated[int, typer.Option(help="Rank of the LoRA adapters.")] = 8,
    lora_alpha: Annotated[float, typer.Option(help="LoRA scale numerator.")] = 16.0,
    unfreeze_top: Annotated[
        int, typer.Option(help="Fine-tune the top K decoder layers in full.")
    ] = 0,
    unfreeze_encoder_top: Annotated[
        int, typer.Option(help="Fine-tune the top K encoder layers in full.")
    ] = 0,
    backbone_lr: Annotated[
        float, typer.Option(help="Learning rate of LoRA / unfrozen backbone weights.")
    ] = TrainConfig.backbone_lr,
    max_length: Annotated[
        int, typer.Option(help="Max tokens per sentence.")
    ] = DecoderConfig.max_length,
    beta_max: Annotated[float, typer.Option()] = TrainConfig.beta_max,
    beta_cycles: Annotated[int, typer.Option()] = TrainConfig.beta_cycles,
    free_bits: Annotated[
        float, typer.Option(help="KL floor per latent dimension (nats).")
    ] = TrainConfig.free_bits,
    reconstruction: Annotated[
        str, typer.Option(help="sum or mean of token cross-entropy.")
    ] = "sum",
    grad_accum: Annotated[int, typer.Option(help="Gradient accumulation steps.")] = 1,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from <out>/last.")
    ] = False,
    text_field: TextFieldOpt = "text",
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow code from the backbone repos to run.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    threads: ThreadsOpt = None,
) -> None:
    """Train a VAE from two pretrained LMs on a corpus."""
    from lmvae.model import LanguageVAE
    from lmvae.trainer import train as run_training

    _set_threads(threads)
    if (data is None) == (annotations is None):
        raise LmvaeError("give the sentences with either --data or --annotations")
    layer: int | str = (
        "mix" if encoder_layer == "mix" else _int_option("--encoder-layer", encoder_layer)
    )
    train_cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        backbone_lr=backbone_lr,
        eval_fraction=eval_fraction,
        beta_max=beta_max,
        beta_cycles=beta_cycles,
        free_bits=free_bits,
        reconstruction=reconstruction,  # type: ignore[arg-type]
        gradient_accumulation_steps=grad_accum,
        seed=seed,
        progress=progress,
    )
    train_cfg.validate()
    vae_cfg = VAEConfig.create(
        encoder,
        decoder,
        latent_size,
        trust_remote_code=trust_remote_code,
        encoder_layer=layer,
        encoder_pooling=pooling,
        encoder_normalize=normalize,
        encoder_max_length=max_length,
        decoder_num_slots=num_slots,
        decoder_rank=rank,
        decoder_embed_injection=embed_injection,
        decoder_injection=injection.value,
        decoder_max_length=max_length,
        encoder_lora_rank=lora_rank if lora_encoder else 0,
        encoder_lora_alpha=lora_alpha,
        encoder_unfreeze_top=unfreeze_encoder_top,
        decoder_lora_rank=lora_rank if lora_decoder else 0,
        decoder_lora_alpha=lora_alpha,
        decoder_unfreeze_top=unfreeze_top,
    )
    source = annotations if annotations is not None else data
    labels = label_field if annotations is not None else None
    if prior is Prior.mixture and prior_label is None:
        raise LmvaeError("--prior mixture needs --prior-label: the field holding the category")
    category = prior_label if prior is Prior.mixture else None
    corpus = _read_data(source, labels, category, text_field)
    eval_corpus = None if eval_data is None else _read_data(eval_data, labels, category, text_field)
    corpus = _condition(vae_cfg, corpus, label_field, condition, spacy, spacy_model, category)
    if eval_corpus is not None:
        train_texts, eval_texts = corpus, eval_corpus
    else:
        train_texts, eval_texts = _split(corpus, eval_fraction, train_cfg.max_eval_sentences, seed)
    model = LanguageVAE.from_config(vae_cfg, seed=seed)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    log(
        f"training {model.num_parameters(trainable_only=True):,} of {model.num_parameters():,} "
        f"parameters on {len(train_texts)} sentences ({len(eval_texts)} held out)"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(train_cfg.to_dict(), indent=2) + "\n")
    result = run_training(model, train_texts, eval_texts, train_cfg, out, log=log, resume=resume)
    log(f"done in {result.seconds:.0f} s; best epoch {result.best_epoch}: {out / 'best'}")


def _read_data(path: Path, label_field: str | None, category_field: str | None, text_field: str):
    """Plain sentences, or an AnnotatedCorpus when labels or categories are asked for."""
    from lmvae.annotations import read_annotations
    from lmvae.data import read_corpus

    if label_field is None and category_field is None:
        return read_corpus(path, text_field)
    return read_annotations(path, label_field, category_field, text_field)


def _condition(cfg, corpus, label_field, condition, spacy, spacy_model, category):
    """Fill the annotation and prior sections of a new model's config from its data; returns
    the data, annotated by spaCy with --spacy."""
    from lmvae.annotations import AnnotatedCorpus, as_corpus, spacy_annotate

    ann = cfg.annotations
    if spacy is not None:
        if isinstance(corpus, AnnotatedCorpus) and corpus.labels is not None:
            raise LmvaeError("give labels with --annotations or --spacy, not both")
        corpus = as_corpus(corpus)
        ann.source, ann.spacy_model, ann.spacy_attribute = "spacy", spacy_model, spacy
        corpus.labels = spacy_annotate(corpus.texts, spacy_model, spacy)
        vocab = corpus.label_vocabulary()
    elif isinstance(corpus, AnnotatedCorpus) and corpus.labels is not None:
        vocab, ann.field = corpus.label_vocabulary(), label_field
    else:
        vocab = []
    if vocab:
        ann.labels = vocab
        ann.encoder = condition in (Condition.encoder, Condition.both)
        ann.decoder = condition in (Condition.decoder, Condition.both)
    if category is not None:
        cfg.prior.kind, cfg.prior.field = "mixture", category
        cfg.prior.categories = corpus.category_vocabulary()
    cfg.validate()
    return corpus


def _split(corpus, eval_fraction: float, max_eval: int, seed: int):
    from lmvae.annotations import AnnotatedCorpus
    from lmvae.data import split_corpus

    if not isinstance(corpus, AnnotatedCorpus):
        return split_corpus(corpus, eval_fraction, max_eval, seed)
    index = list(range(len(corpus)))
    train_idx, eval_idx = split_corpus(index, eval_fraction, max_eval, seed)
    return corpus.subset(train_idx), corpus.subset(eval_idx)


def _read_for_model(vae, data: Path, text_field: str):
    """Sentences for a trained model, with their word labels when it reads them from files."""
    from lmvae.annotations import CONLL_SUFFIXES, read_annotations
    from lmvae.data import read_corpus

    ann = vae.config.annotations
    annotated = data.suffix.lower() in (".jsonl", ".json", *CONLL_SUFFIXES)
    if ann.enabled and ann.source == "file" and annotated:
        corpus = read_annotations(data, ann.field, None, text_field)
        return corpus.texts, corpus.labels
    return read_corpus(data, text_field), None


def _int_option(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise LmvaeError(f"{name} must be an integer or 'mix', got {value!r}") from None


@app.command()
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
) -> None:
    """Print the latent vector of each sentence."""
    import torch

    from lmvae.objective import reparameterize

    _set_threads(threads)
    vae = _load(model, device)
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
    _emit(records, fmt)


@app.command()
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
) -> None:
    """Encode each sentence and decode it back."""
    import torch

    _set_threads(threads)
    gen_cfg = _generation(strategy, num_beams, temperature, top_k, top_p, max_new_tokens)
    vae = _load(model, device)
    texts, labels = _read_for_model(vae, data, text_field)
    gen = torch.Generator(device=vae.device).manual_seed(seed)
    outs = vae.reconstruct(texts, sample, labels, generation=gen_cfg, generator=gen)
    _emit([{"text": t, "reconstruction": r} for t, r in zip(texts, outs, strict=True)], fmt)


@app.command()
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
) -> None:
    """Decode sentences from latents drawn from the prior (of one category, with --category)."""
    _set_threads(threads)
    if n < 1:
        raise LmvaeError(f"--n must be >= 1, got {n}")
    gen_cfg = _generation(strategy, num_beams, temperature, top_k, top_p, max_new_tokens)
    vae = _load(model, device)
    extra = {} if labels is None else {"word_labels": [labels.split()] * n}
    texts = vae.sample_prior(n, seed=seed, generation=gen_cfg, category=category, **extra)
    _emit([{"text": t} for t in texts], fmt, text_key="text")


@app.command()
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
) -> None:
    """Decode evenly spaced points between the latents of two sentences."""
    _set_threads(threads)
    gen_cfg = _generation(strategy, num_beams, 1.0, 0, 1.0, max_new_tokens)
    vae = _load(model, device)
    texts = vae.interpolate(start, end, steps=steps, mode=mode, generation=gen_cfg)
    records = [{"step": i, "t": round(i / (steps - 1), 4), "text": t} for i, t in enumerate(texts)]
    _emit(records, fmt, text_key="text")


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="Where to keep the trained demo model.")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="VAE training epochs (default: the demo's own).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    threads: ThreadsOpt = None,
) -> None:
    """Offline demo: build tiny LMs on the bundled corpus, train a VAE, show what it does."""
    from lmvae.demo.run import run_demo

    _set_threads(threads)
    run_demo(out_dir=out, epochs=epochs, seed=seed, progress=progress)


@app.command()
def probe(
    model: Annotated[str, typer.Argument(help="Trained model folder or hub id.")],
    data: Annotated[
        str,
        typer.Option(
            help="Probe sentences: .txt, .jsonl (text + per-word 'labels' + sentence labels), "
            ".csv/.tsv, or 'demo' for the bundled demo corpus."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Report folder (report.html, report.json, maps).")] = (
        Path("report")
    ),
    probes: Annotated[
        str,
        typer.Option(
            help="Comma-separated probes or 'all': reconstruction, traversal, interpolation, "
            "arithmetic, disentanglement, clusters, properties, sts."
        ),
    ] = "all",
    sts: Annotated[
        Path | None, typer.Option(help="Sentence pairs with gold scores (s1, s2, score).")
    ] = None,
    vectors: Annotated[
        Path | None,
        typer.Option(
            help="word2vec text file for interpolation smoothness (default: the "
            "decoder's token embeddings)."
        ),
    ] = None,
    color_by: Annotated[
        str | None, typer.Option(help="Sentence label that colours the cluster maps.")
    ] = None,
    maps: Annotated[str, typer.Option(help="Projections for the cluster maps.")] = "pca,tsne,umap",
    max_sentences: Annotated[int, typer.Option(help="Probe at most this many sentences.")] = 2000,
    text_field: Annotated[str, typer.Option(help="Text field of JSONL/CSV data.")] = "text",
    labels_field: Annotated[str, typer.Option(help="Per-word label field of JSONL data.")] = (
        "labels"
    ),
    seed: Annotated[int, typer.Option()] = 0,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Probe a trained model's latent space and write an HTML + JSON report."""
    import time

    from lmvae.probes.records import load_probe_data
    from lmvae.probes.report import find_history, run_probes, write_report

    started = time.perf_counter()
    _set_threads(threads)
    chosen = [p.strip() for p in probes.split(",") if p.strip()]
    records = load_probe_data(data, text_field=text_field, roles_field=labels_field)
    vae = _load(model, device)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    results = run_probes(
        vae,
        records,
        chosen,
        max_sentences=max_sentences,
        methods=[m.strip() for m in maps.split(",") if m.strip()],
        color_by=color_by,
        sts=sts,
        vectors=vectors,
        history=find_history(model) if Path(model).is_dir() else None,
        seed=seed,
        meta={"model": model, "data": data},
        log=say,
    )
    report = write_report(results, out)
    say(f"report written to {report} in {time.perf_counter() - started:.0f} s")
    print(report)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning lmvae's own errors into one line on stderr."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(args=argv, standalone_mode=False)
    except LmvaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:  # click's usage errors carry their own formatting
        import click

        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
