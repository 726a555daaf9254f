"""Everything a run decides before its first step: corpora and conditions, device and
precision, tokenised rows, cached encoder features, the optimizer and its schedule."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR

from lmvae.annotations import AnnotatedCorpus, as_corpus
from lmvae.conditioning import Conditions, prepare_conditions
from lmvae.distributed import Processes
from lmvae.errors import ConfigError, DataError
from lmvae.feature_store import FeatureStore, feature_settings
from lmvae.features import FeatureCache
from lmvae.fsdp import check_engine, shard_decoder
from lmvae.model import BACKBONE_PREFIXES, LanguageVAE
from lmvae.precision import FrozenCast, cpu_bf16_decoder, default_mixed_precision
from lmvae.schedule import lr_factor
from lmvae.streaming import LineCorpus
from lmvae.train_config import TrainConfig
from lmvae.training.sentences import TrainingSentences

Features = Callable[[list[int]], Tensor]


@dataclass
class Precision:
    """How the frozen decoder computes during training passes.

    bf16 on CPU holds the frozen decoder in bf16 instead of autocasting (see
    lmvae.precision); elsewhere Accelerate's autocast does mixed precision.  Held weights suit
    a frozen decoder and one with LoRA adapters (which stay fp32); a decoder with unfrozen
    layers gets torch's CPU autocast instead.
    """

    mixed: str
    cpu_bf16: bool
    cpu_autocast: bool
    bf16_weights: FrozenCast | None = None

    @property
    def pad_multiple(self) -> int:
        # bf16 matmuls run on oneDNN, which keeps a compiled kernel (~0.7 MB) per distinct
        # shape: batch lengths rounded up to a multiple of 4 bound their number.
        return 4 if self.cpu_bf16 else 1

    def context(self, model: LanguageVAE):
        if self.cpu_bf16:
            return cpu_bf16_decoder(model.decoder.lm, self.bf16_weights)
        if self.cpu_autocast:
            # The context spans an epoch, so autocast must not cache its bf16 copies of the
            # trainable weights: the cache lives until the context exits and every step after
            # the first would compute with the first step's weights.
            return torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()


@dataclass
class RunSetup:
    """The fixed parts of a run that the loop reads."""

    #: The training sentences and their decoder rows (kept, or tokenised per batch).
    sentences: TrainingSentences
    eval_set: AnnotatedCorpus | None
    train_cond: Conditions
    train_features: Features
    eval_features: Features | None
    feature_cache: FeatureCache
    #: Features on disk (``config.feature_cache_dir``), behind the in-memory cache.
    feature_store: FeatureStore | None
    accelerator: Accelerator
    processes: Processes
    #: What a training step calls: the model, or with several processes its DDP wrapper.
    forward: torch.nn.Module
    precision: Precision
    optimizer: Any  # torch optimizer, or Accelerate's wrapper of it
    scheduler: LambdaLR
    n_batches: int  # per epoch, each split over the processes
    total_steps: int
    #: Epochs to run: ``config.epochs``, or as many as ``config.max_steps`` takes.
    epochs: int
    backward: Callable
    clip_grad_norm: Callable
    #: What reading the corpora quietly changed (sentences cut, unknown labels), for the log.
    notes: list[str]


def choose_precision(model: LanguageVAE, config: TrainConfig) -> tuple[Precision, Accelerator]:
    device = PartialState().device
    mixed = config.mixed_precision or default_mixed_precision(device)
    # LoRA adapters cast their input to their own (fp32) weights and back (PEFT), so they run
    # inside a decoder held in bf16; unfrozen fp32 layers would not, and get autocast.
    layers_train = any(
        p.requires_grad and ".lora_" not in name for name, p in model.decoder.lm.named_parameters()
    )
    on_cpu = device.type == "cpu"
    cpu_bf16 = mixed == "bf16" and on_cpu
    precision = Precision(mixed, cpu_bf16 and not layers_train, cpu_bf16 and layers_train)
    # Accumulation is done by the loop rather than by Accelerate: its accumulate() only closes
    # a group at the end of a dataloader it prepared, and a group must never straddle two
    # epochs.  (On CPU Accelerate stays at "no": its state is process-wide, bf16 is done here.)
    accelerator = Accelerator(mixed_precision="no" if on_cpu else mixed)
    return precision, accelerator


def feature_source(
    model: LanguageVAE,
    texts: Callable[[list[int]], list[str]],
    cond: Conditions,
    store: FeatureCache,
    disk: FeatureStore | None = None,
) -> Features:
    """Encoder features of the sentences at given indices (``texts`` reads them): cached while
    the encoder is frozen, in memory and, with a ``disk`` store, on disk behind it."""

    def encode(chunk: list[str], labels: list[list[str]] | None) -> Tensor:
        return model.features(**model.encoder_inputs(chunk, labels))

    def compute(indices: list[int]) -> Tensor:
        if disk is None:
            return encode(texts(indices), cond.labels_of(indices))
        return disk.fetch(texts(indices), cond.labels_of(indices), encode)

    if model.encoder.backbone_trains:  # LoRA / unfrozen layers: features change every step
        return compute
    return lambda indices: store.get(indices, compute)


def param_groups(model: LanguageVAE, config: TrainConfig) -> list[dict[str, Any]]:
    """The heads at ``lr``; backbone weights that train (LoRA, unfrozen layers) at
    ``backbone_lr``, since pretrained weights want a far smaller step than fresh projections."""
    heads, backbone = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.startswith(BACKBONE_PREFIXES) else heads).append(p)
    groups = [{"params": heads}]
    if backbone:
        groups.append({"params": backbone, "lr": config.backbone_lr})
    return groups


def calibrate_slots(model: LanguageVAE, sentences: TrainingSentences) -> None:
    """Data-dependent start of fresh slot projections on the first 64 sentences (see
    DecoderConfig.slot_init), in the decoder's own precision."""
    injector = model.decoder.injector
    if injector.mode == "prompt":
        if not injector.calibrated:
            model.decoder.calibrate_prompt()  # always: a soft prompt starts among tokens
        return
    wanted = model.config.decoder.slot_init == "decoder_kv" and injector.mode != "memory"
    if wanted and not injector.calibrated:
        sample = model.codec.collate(sentences.rows(range(min(64, len(sentences)))))
        model.decoder.calibrate_slots(
            sample["input_ids"].to(model.device), sample["attention_mask"].to(model.device)
        )


def pack_batches(model: LanguageVAE, sentences: TrainingSentences) -> None:
    """Padding-free training batches (lmvae.packing), once a sample of 8 sentences shows the
    decoder keeps packed sentences apart; the sample's z is fixed, so no RNG is drawn."""
    sample = model.codec.collate(sentences.rows(range(min(8, len(sentences)))))
    z = torch.zeros(sample["input_ids"].shape[0], model.latent_size, device=model.device)
    model.decoder.pack_training_pass(
        z, sample["input_ids"].to(model.device), sample["attention_mask"].to(model.device)
    )


def prepare_run(
    model: LanguageVAE,
    train_texts: Sequence[str] | AnnotatedCorpus,
    eval_texts: Sequence[str] | AnnotatedCorpus,
    config: TrainConfig,
    fresh: bool,
    processes: Processes | None = None,
) -> RunSetup:
    """Check the data, place the model, tokenise, and build optimizer and schedule; ``fresh``
    (not resuming) lets fresh slot projections be calibrated.  With several ``processes``
    ``config.batch_size`` is each one's share of a batch."""
    processes = processes or Processes()
    if not len(train_texts):
        raise DataError("no training sentences")
    streamed = isinstance(train_texts, LineCorpus)
    if streamed:
        check_streamable(model, config)
        train_cond = Conditions()  # plain sentences: nothing to annotate
        texts: Sequence[str] = train_texts
        train_labels = None
    else:
        # Labels (from the data, or spaCy) and categories, checked once for the whole run.
        train_set = model.annotate(as_corpus(train_texts))
        train_cond = prepare_conditions(model, train_set)
        texts, train_labels = train_set.texts, train_set.labels
    eval_set = model.annotate(as_corpus(eval_texts)) if len(eval_texts) else None
    eval_cond = prepare_conditions(model, eval_set) if eval_set else None

    precision, accelerator = choose_precision(model, config)
    sharding = None  # before the model is placed: the decoder goes over in shards
    if config.fsdp:
        if model.decoder.spread_or_quantized:
            raise ConfigError(
                "fsdp shards a float decoder held whole by each process: not one spread by "
                "device_map or quantised by bitsandbytes"
            )
        sharding = shard_decoder(model, precision.mixed, accelerator.device, processes.world)
    model.place(accelerator.device)
    model.train()
    # A corpus in memory is tokenised once (batches only pad); a stream batch by batch.
    sentences = TrainingSentences(texts, model.codec)
    notes = [] if sharding is None else [sharding]
    if not streamed:  # (a stream is never read whole)
        notes += [f"training data: {n}" for n in model.codec.notes(texts, train_labels)]
    if eval_set is not None:
        notes += [f"held-out data: {n}" for n in model.codec.notes(eval_set.texts, eval_set.labels)]
    if fresh:
        calibrate_slots(model, sentences)
    model.decoder.pack = False  # a model trained packed before trains padded unless packed now
    if config.pack or (config.pack is None and model.decoder.injector.mode == "prompt"):
        try:
            pack_batches(model, sentences)
        except ConfigError as e:
            if config.pack:  # asked for: say why it cannot be
                raise
            notes.append(f"batches are padded: {e}")
    if config.gradient_checkpointing:
        model.decoder.checkpoint_training_pass()
    if config.compile:
        model.decoder.compile_training_pass()
    disk = None
    if config.feature_cache_dir is not None and not model.encoder.backbone_trains:
        settings = feature_settings(model, accelerator.device, precision.mixed)
        max_bytes = int(config.feature_cache_max_gb * 2**30)
        disk = FeatureStore(config.feature_cache_dir, settings, max_bytes, accelerator.device)
    elif config.feature_cache_dir is not None:
        notes.append("the encoder trains (LoRA / unfrozen layers): no features are cached")
    cache = FeatureCache(config.feature_cache_mb * 2**20)
    train_features = feature_source(model, sentences.text_batch, train_cond, cache, disk)
    eval_features = None
    if eval_set is not None:
        eval_cache = FeatureCache(config.feature_cache_mb * 2**20)
        eval_texts_of = partial(_pick, eval_set.texts)
        eval_features = feature_source(model, eval_texts_of, eval_cond, eval_cache, disk)

    n_batches = processes.batch_count(len(sentences), config.batch_size * processes.world)
    steps_per_epoch = math.ceil(n_batches / config.gradient_accumulation_steps)
    if config.max_steps:  # the steps decide, the epochs follow
        total_steps, epochs = config.max_steps, math.ceil(config.max_steps / steps_per_epoch)
    else:
        total_steps, epochs = steps_per_epoch * config.epochs, config.epochs
    # The fused kernel updates all tensors in one pass; the per-tensor loop cost ~8 % of a CPU
    # step of the default model.
    optimizer = torch.optim.AdamW(
        param_groups(model, config),
        lr=config.lr,
        weight_decay=config.weight_decay,
        fused=accelerator.device.type in ("cuda", "cpu"),
    )
    schedule = partial(
        lr_factor,
        warmup_steps=int(config.warmup_ratio * total_steps),
        total_steps=total_steps,
        schedule=config.lr_schedule,
    )
    scheduler = LambdaLR(optimizer, schedule)
    # Accelerate's wrappers matter with a loss scaler or a distributed engine; in a plain
    # single-process run they pass through, at ~1 ms of Python a step (the optimizer wrapper
    # looks an optional package up twice a step), so the loop calls torch directly there.
    plain = accelerator.distributed_type == DistributedType.NO and accelerator.scaler is None
    if precision.cpu_bf16:
        precision.bf16_weights = FrozenCast(model.decoder.lm, torch.bfloat16)
    return RunSetup(
        sentences=sentences,
        eval_set=eval_set,
        train_cond=train_cond,
        train_features=train_features,
        eval_features=eval_features,
        feature_cache=cache,
        feature_store=disk,
        accelerator=accelerator,
        processes=processes,
        forward=model if plain else data_parallel(model, accelerator),
        precision=precision,
        optimizer=optimizer if plain else accelerator.prepare(optimizer),
        scheduler=scheduler,
        n_batches=n_batches,
        total_steps=total_steps,
        epochs=epochs,
        backward=Tensor.backward if plain else accelerator.backward,
        clip_grad_norm=torch.nn.utils.clip_grad_norm_ if plain else accelerator.clip_grad_norm_,
        notes=notes,
    )


def _pick(texts: Sequence[str], indices: list[int]) -> list[str]:
    return [texts[i] for i in indices]


def check_streamable(model: LanguageVAE, config: TrainConfig) -> None:
    """A streamed corpus holds plain sentences and is never tokenised whole."""
    if model.config.annotations.enabled or model.config.prior.kind == "mixture":
        raise ConfigError(
            "a streamed corpus holds plain sentences: a model conditioned on word labels or "
            "with a mixture prior trains on a corpus in memory (without --stream)"
        )
    if config.bucket_batches:
        raise ConfigError(
            "length bucketing (bucket_batches) needs every sentence's token length: a "
            "streamed corpus trains unbucketed (bucket_batches=0)"
        )


def data_parallel(model: LanguageVAE, accelerator: Accelerator) -> torch.nn.Module:
    """The model prepared by Accelerate (DDP) with only its trainable weights synchronised.

    DDP would otherwise broadcast every frozen backbone weight and buffer when it wraps the
    model and the buffers again at each forward; told to ignore them, its gradient buckets and
    broadcasts hold the heads (and any adapters) alone.
    """
    if accelerator.distributed_type == DistributedType.NO:
        return model
    check_engine(accelerator)
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    frozen += [name for name, _ in model.named_buffers()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
    return accelerator.prepare_model(model)
