"""The training loop on Hugging Face Accelerate: config and corpora in, metrics and checkpoints out.

Reads top to bottom: set-up, then per epoch a pass over shuffled batches (teacher-forced, one
decoder forward per batch) and an evaluation.  Frozen encoder features are computed once per
sentence and kept in a bounded cache.  ``<out>/best`` and ``<out>/last`` are written atomically
and each loads with :meth:`LanguageVAE.from_pretrained`.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType, set_seed
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from tqdm.auto import tqdm

from lmvae.annotations import as_corpus
from lmvae.checkpoint import (
    load_optimizer,
    load_trainable_weights,
    replace_directory,
    save_optimizer,
)
from lmvae.conditioning import prepare_conditions
from lmvae.config import TrainConfig
from lmvae.data import collate_decoder, epoch_batches, tokenize_decoder
from lmvae.errors import ConfigError, DataError
from lmvae.evaluation import device_batch, evaluate
from lmvae.features import FeatureCache
from lmvae.memory import release_free_memory
from lmvae.model import BACKBONE_PREFIXES, LanguageVAE
from lmvae.objective import cyclical_beta, elbo_loss
from lmvae.precision import FrozenCast, cpu_bf16_decoder, default_mixed_precision
from lmvae.schedule import lr_factor

TRAINER_STATE = "trainer_state.json"
HIGHER_IS_BETTER = ("bleu", "exact_match", "token_accuracy", "word_accuracy")
HISTORY = "history.jsonl"
_POSTFIX_EVERY = 10  # batches between progress-bar updates (each one reads the device)
_TRIM_EVERY = 32  # batches between handing freed heap pages back to the OS (lmvae.memory)


@dataclass
class TrainResult:
    """What a run leaves behind besides its checkpoints."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_dir: Path | None = None
    last_dir: Path | None = None
    seconds: float = 0.0


def save_checkpoint(
    model: LanguageVAE,
    target: Path,
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write a loadable model folder plus trainer state (and optimizer state, for resuming),
    atomically: staged beside the target, then renamed into place."""
    staging = target.with_name(f".{target.name}.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    model.save_pretrained(staging)
    if optimizer is not None:
        save_optimizer(optimizer, staging)
    (staging / TRAINER_STATE).write_text(json.dumps(state, indent=2) + "\n")
    replace_directory(staging, target)
    return target


def _read_history(out: Path) -> list[dict[str, Any]]:
    path = out / HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train(
    model: LanguageVAE,
    train_texts: Sequence[str],
    eval_texts: Sequence[str] = (),
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train the model's heads in place and return the per-epoch history.

    ``out_dir`` receives ``best/`` (best held-out ``config.best_metric``, or the last epoch
    without an eval split), ``last/`` (with optimizer state) and ``history.jsonl``.  With
    ``resume=True`` an interrupted run continues from ``out_dir/last`` after its last finished
    epoch; shuffling and sampling are seeded per epoch, so a resumed run repeats the
    uninterrupted one.
    """
    config = config or TrainConfig()
    config.validate()
    if not len(train_texts):
        raise DataError("no training sentences")
    # Labels (from the data, or spaCy) and categories, checked once for the whole run.
    train_set = model.annotate(as_corpus(train_texts))
    eval_set = model.annotate(as_corpus(eval_texts)) if len(eval_texts) else None
    train_texts, eval_texts = train_set.texts, eval_set.texts if eval_set else []
    train_cond = prepare_conditions(model, train_set)
    eval_cond = prepare_conditions(model, eval_set) if eval_set else None
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if resume and out is None:
        raise ConfigError("resume needs the run folder (out_dir) of the interrupted run")
    set_seed(config.seed)
    started = time.perf_counter()

    device = PartialState().device
    mixed = config.mixed_precision or default_mixed_precision(device)
    # bf16 on CPU holds the frozen decoder in bf16 during the training passes instead of
    # autocasting (see lmvae.precision); elsewhere Accelerate's autocast does mixed precision.
    # Held weights suit a frozen decoder only: LoRA adapters or unfrozen layers keep fp32
    # weights, and a decoder with them gets torch's CPU autocast instead.
    decoder_trains = any(p.requires_grad for p in model.decoder.lm.parameters())
    cpu_bf16 = mixed == "bf16" and device.type == "cpu" and not decoder_trains
    cpu_autocast = mixed == "bf16" and device.type == "cpu" and decoder_trains
    # Accumulation is done here rather than by Accelerate: its accumulate() only closes a group
    # at the end of a dataloader it prepared, and a group must never straddle two epochs.
    # (On CPU Accelerate stays at "no": its state is process-wide, and bf16 is done here.)
    accelerator = Accelerator(mixed_precision="no" if device.type == "cpu" else mixed)
    # bf16 matmuls run on oneDNN, which keeps a compiled kernel (~0.7 MB) per distinct shape:
    # batch lengths rounded up to a multiple of 4 bound their number (-40 MB peak RSS here).
    pad_multiple = 4 if cpu_bf16 else 1
    accumulation = config.gradient_accumulation_steps
    model.to(accelerator.device)
    model.train()

    # Tokenise the whole corpus once; batches only pad.
    dec_rows = tokenize_decoder(
        model.decoder_tokenizer, train_texts, model.config.decoder.max_length
    )
    empty = [train_texts[i] for i, r in enumerate(dec_rows) if not r]
    if empty:
        raise DataError(f"{len(empty)} sentence(s) give no decoder tokens, e.g. {empty[0]!r}")
    injector = model.decoder.injector
    calibrate = model.config.decoder.slot_init == "decoder_kv" and injector.mode != "memory"
    if calibrate and not injector.calibrated and not resume:
        # Data-dependent initialisation on the first sentences, in the decoder's own precision.
        sample = collate_decoder(dec_rows[:64], model.bos_id, model.eos_id, model.pad_id)
        model.decoder.calibrate_slots(
            sample["input_ids"].to(model.device), sample["attention_mask"].to(model.device)
        )
    cache = FeatureCache(config.feature_cache_mb * 2**20)
    eval_cache = FeatureCache(config.feature_cache_mb * 2**20)

    def feature_source(texts: list[str], cond, store: FeatureCache) -> Callable:
        def compute(indices: list[int]) -> Tensor:
            chunk = [texts[i] for i in indices]
            return model.features(**model.encoder_inputs(chunk, cond.labels_of(indices)))

        if model.encoder.backbone_trains:  # LoRA / unfrozen layers: features change every step
            return compute
        return lambda indices: store.get(indices, compute)

    train_features = feature_source(train_texts, train_cond, cache)
    eval_features = feature_source(eval_texts, eval_cond, eval_cache) if eval_set else None

    order_gen = torch.Generator()
    dec_lengths = [len(r) for r in dec_rows]
    n_batches = math.ceil(len(train_texts) / config.batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel updates all tensors in one pass; the per-tensor loop cost ~8 % of a CPU
    # step of the default model (its 1 M-weight K/V projection).
    optimizer = torch.optim.AdamW(
        _param_groups(model, config),
        lr=config.lr,
        weight_decay=config.weight_decay,
        fused=accelerator.device.type in ("cuda", "cpu"),
    )
    steps_per_epoch = math.ceil(n_batches / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    schedule = partial(
        lr_factor,
        warmup_steps=int(config.warmup_ratio * total_steps),
        total_steps=total_steps,
        schedule=config.lr_schedule,
    )
    scheduler = LambdaLR(optimizer, schedule)

    result = TrainResult()
    best_score = math.inf
    step = 0
    first_epoch = 1
    if resume and (out / "last" / TRAINER_STATE).is_file():
        state = json.loads((out / "last" / TRAINER_STATE).read_text())
        load_trainable_weights(model, out / "last")
        load_optimizer(optimizer, out / "last")
        # LambdaLR rebuilds its lambdas from the config; None keeps them as they are.
        lambdas = [None] * len(optimizer.param_groups)
        scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": lambdas})
        step, first_epoch = state["step"], state["epoch"] + 1
        best_score = state.get("best_score", math.inf)
        result.best_epoch = state.get("best_epoch", 0)
        result.history = [r for r in _read_history(out) if r["epoch"] < first_epoch]
        # Drop records of an epoch that finished but was not checkpointed.
        (out / HISTORY).write_text("".join(json.dumps(r) + "\n" for r in result.history))
        if log is not None:
            log(f"resuming after epoch {state['epoch']} from {out / 'last'}")
    # Accelerate's wrappers matter with a loss scaler or a distributed engine; in a plain
    # single-process run they pass through, at ~1 ms of Python a step (the optimizer wrapper
    # looks an optional package up twice a step), so the loop calls torch directly there.
    plain = accelerator.distributed_type == DistributedType.NO and accelerator.scaler is None
    if not plain:
        optimizer = accelerator.prepare(optimizer)
    backward = Tensor.backward if plain else accelerator.backward
    clip_grad_norm = torch.nn.utils.clip_grad_norm_ if plain else accelerator.clip_grad_norm_
    sample_gen = torch.Generator(device=accelerator.device)
    bf16_weights = FrozenCast(model.decoder.lm, torch.bfloat16) if cpu_bf16 else None

    for epoch in range(first_epoch, config.epochs + 1):
        order_gen.manual_seed(config.seed * 100_003 + epoch)
        sample_gen.manual_seed(config.seed * 100_003 + epoch)
        epoch_start = time.perf_counter()
        # Running sums stay on the device: reading them back is a host sync, done only to log.
        sums = torch.zeros(3, device=accelerator.device)  # loss, reconstruction, KL
        batches = epoch_batches(
            len(train_texts), config.batch_size, order_gen, dec_lengths, config.bucket_batches
        )
        bar = tqdm(
            batches,
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not config.progress,
            leave=False,
            dynamic_ncols=True,
        )
        beta = 0.0
        precision = contextlib.nullcontext()
        if cpu_bf16:
            precision = cpu_bf16_decoder(model.decoder.lm, bf16_weights)
        elif cpu_autocast:
            precision = torch.autocast("cpu", dtype=torch.bfloat16)
        with precision:
            for batch_index, indices in enumerate(bar):
                group_start = batch_index - batch_index % accumulation
                group_size = min(accumulation, n_batches - group_start)
                sync = batch_index + 1 == group_start + group_size
                beta = cyclical_beta(
                    step,
                    total_steps,
                    config.beta_cycles,
                    config.beta_max,
                    config.beta_zero_ratio,
                    config.beta_ramp_ratio,
                )
                no_sync = contextlib.nullcontext() if sync else accelerator.no_sync(model)
                with no_sync, accelerator.autocast():
                    features = train_features(indices)
                    batch = collate_decoder(
                        [dec_rows[i] for i in indices],
                        model.bos_id,
                        model.eos_id,
                        model.pad_id,
                        pad_multiple,
                    )
                    batch.update(train_cond.batch(indices, batch["input_ids"].shape[1]))
                    output = model(
                        **device_batch(model, batch), features=features, generator=sample_gen
                    )
                    terms = elbo_loss(
                        output.tokens.nll,
                        output.tokens.num_tokens,
                        output.kl_per_dim,
                        beta,
                        config.free_bits,
                        config.reconstruction,
                    )
                    backward(terms.loss / group_size)
                if sync:
                    # Clip after backward, on this group's gradients, then step.
                    if config.max_grad_norm > 0:
                        clip_grad_norm(params, config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                sums += torch.stack([terms.loss.detach(), terms.reconstruction, terms.kl])
                if batch_index % _TRIM_EVERY == 0:
                    release_free_memory()  # batch shapes vary: keep the heap from creeping
                last = batch_index + 1 == n_batches
                if config.progress and (batch_index % _POSTFIX_EVERY == 0 or last):
                    shown = [f"{v:.2f}" for v in (sums / (batch_index + 1)).tolist()]
                    bar.set_postfix(
                        loss=shown[0], rec=shown[1], kl=shown[2], beta=f"{beta:.2f}", refresh=False
                    )
        bar.close()
        train_seconds = time.perf_counter() - epoch_start
        mean_loss, mean_recon, mean_kl = (sums / n_batches).tolist()
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "beta": beta,
            "lr": scheduler.get_last_lr()[0],
            "train_loss": mean_loss,
            "train_recon": mean_recon,
            "train_kl": mean_kl,
            "train_seconds": train_seconds,
            "train_sents_per_s": len(train_texts) / train_seconds,
            "encoder_passes": cache.misses,
        }
        if eval_texts:
            metrics = evaluate(
                model,
                eval_set,
                batch_size=max(config.batch_size, 64),
                decode_sentences=config.eval_decode_sentences,
                features=eval_features,
                free_bits=config.free_bits,
                beta=config.beta_max,
            )
            record.update({f"eval_{k}": v for k, v in metrics.items()})
            score = metrics[config.best_metric]
            if config.best_metric in HIGHER_IS_BETTER:
                score = -score
        else:
            score = -epoch  # no eval split: the latest epoch counts as best
        result.history.append(record)
        if log is not None:
            log(_format_record(record))
        is_best = score < best_score
        if is_best:
            best_score = score
            result.best_epoch = epoch
        if out is not None:
            state = {
                "epoch": epoch,
                "step": step,
                "best_score": best_score,
                "best_epoch": result.best_epoch,
                "scheduler": _scheduler_state(scheduler),
                "train_config": config.to_dict(),
                "metrics": record,
            }
            with (out / HISTORY).open("a" if epoch > first_epoch or resume else "w") as f:
                f.write(json.dumps(record) + "\n")
            if is_best:
                result.best_dir = save_checkpoint(model, out / "best", state)
            result.last_dir = save_checkpoint(model, out / "last", state, optimizer)
    if out is not None and result.best_dir is None and (out / "best").is_dir():
        result.best_dir = out / "best"
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


def _param_groups(model: LanguageVAE, config: TrainConfig) -> list[dict[str, Any]]:
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


def _scheduler_state(scheduler) -> dict[str, Any]:
    """The JSON-able part of a LambdaLR state (its lambdas are rebuilt from the config)."""
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def _format_record(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}", f"loss {record['train_loss']:.2f}"]
    for key, label, fmt in (
        ("eval_recon_nll", "eval rec", ".2f"),
        ("eval_kl", "kl", ".2f"),
        ("eval_token_accuracy", "tok acc", ".3f"),
        ("eval_bleu", "bleu", ".3f"),
        ("eval_exact_match", "exact", ".3f"),
        ("eval_active_units", "AU", ".0f"),
    ):
        if key in record:
            parts.append(f"{label} {record[key]:{fmt}}")
    parts.append(f"{record['train_sents_per_s']:.0f} sent/s")
    return " | ".join(parts)
