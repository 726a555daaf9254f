"""The training loop on Hugging Face Accelerate: config and corpora in, metrics and checkpoints out.

Reads top to bottom: set-up (:mod:`.setup`), then per epoch a pass over shuffled batches
(teacher-forced, one decoder forward per batch), an evaluation (:mod:`lmvae.evaluation`) and
the checkpoints (:mod:`.state`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from lmvae.annotations import AnnotatedCorpus
from lmvae.data import epoch_batches
from lmvae.errors import ConfigError
from lmvae.evaluation import device_batch, evaluate
from lmvae.memory import release_free_memory
from lmvae.model import LanguageVAE
from lmvae.objective import cyclical_beta, elbo_loss
from lmvae.train_config import TrainConfig
from lmvae.training.setup import RunSetup, prepare_run
from lmvae.training.state import RunState, TrainResult, record_epoch, restore

_POSTFIX_EVERY = 10  # batches between progress-bar updates (each one reads the device)
_TRIM_EVERY = 32  # batches between handing freed heap pages back to the OS (lmvae.memory)


def train(
    model: LanguageVAE,
    train_texts: Sequence[str] | AnnotatedCorpus,
    eval_texts: Sequence[str] | AnnotatedCorpus = (),
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
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ConfigError("resume needs the run folder (out_dir) of the interrupted run")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    started = time.perf_counter()
    setup = prepare_run(model, train_texts, eval_texts, config, fresh=not resume)
    run = RunState()
    if resume:
        restored = restore(model, out, setup.optimizer, setup.scheduler)
        if restored is not None:
            run = restored
            if log is not None:
                log(f"resuming after epoch {run.first_epoch - 1} from {out / 'last'}")

    for epoch in range(run.first_epoch, config.epochs + 1):
        record = train_epoch(model, setup, config, run, epoch)
        metrics = None
        if setup.eval_set is not None:
            metrics = evaluate(
                model,
                setup.eval_set,
                batch_size=max(config.batch_size, 64),
                decode_sentences=config.eval_decode_sentences,
                features=setup.eval_features,
                free_bits=config.free_bits,
                beta=config.beta_max,
            )
            record.update({f"eval_{k}": v for k, v in metrics.items()})
        run.result.history.append(record)
        if log is not None:
            log(format_record(record))
        best = run.is_best(run.score(metrics, config.best_metric, epoch), epoch)
        if out is not None:
            append = epoch > run.first_epoch or resume
            record_epoch(
                model,
                out,
                run,
                record,
                best,
                config.to_dict(),
                setup.scheduler,
                setup.optimizer,
                append,
            )
    result = run.result
    if out is not None and result.best_dir is None and (out / "best").is_dir():
        result.best_dir = out / "best"
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


def train_epoch(
    model: LanguageVAE, setup: RunSetup, config: TrainConfig, run: RunState, epoch: int
) -> dict[str, Any]:
    """One pass over the shuffled training batches; returns the epoch's training record."""
    accelerator = setup.accelerator
    order_gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    sample_gen = torch.Generator(device=accelerator.device)
    sample_gen.manual_seed(config.seed * 100_003 + epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    accumulation = config.gradient_accumulation_steps
    n_batches = setup.n_batches
    epoch_start = time.perf_counter()
    # Running sums stay on the device: reading them back is a host sync, done only to log.
    sums = torch.zeros(3, device=accelerator.device)  # loss, reconstruction, KL
    batches = epoch_batches(
        len(setup.dec_rows),
        config.batch_size,
        order_gen,
        [len(r) for r in setup.dec_rows],
        config.bucket_batches,
    )
    bar = tqdm(
        batches,
        desc=f"epoch {epoch}/{config.epochs}",
        disable=not config.progress,
        leave=False,
        dynamic_ncols=True,
    )
    beta = 0.0
    with setup.precision.context(model):
        for batch_index, indices in enumerate(bar):
            group_start = batch_index - batch_index % accumulation
            group_size = min(accumulation, n_batches - group_start)
            sync = batch_index + 1 == group_start + group_size
            beta = cyclical_beta(
                run.step,
                setup.total_steps,
                config.beta_cycles,
                config.beta_max,
                config.beta_zero_ratio,
                config.beta_ramp_ratio,
            )
            no_sync = contextlib.nullcontext() if sync else accelerator.no_sync(model)
            with no_sync, accelerator.autocast():
                features = setup.train_features(indices)
                batch = model.codec.collate(
                    [setup.dec_rows[i] for i in indices], setup.precision.pad_multiple
                )
                batch.update(setup.train_cond.batch(indices, batch["input_ids"].shape[1]))
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
                setup.backward(terms.loss / group_size)
            if sync:
                # Clip after backward, on this group's gradients, then step.
                if config.max_grad_norm > 0:
                    setup.clip_grad_norm(params, config.max_grad_norm)
                setup.optimizer.step()
                setup.scheduler.step()
                setup.optimizer.zero_grad(set_to_none=True)
                run.step += 1
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
    seconds = time.perf_counter() - epoch_start
    mean_loss, mean_recon, mean_kl = (sums / n_batches).tolist()
    return {
        "epoch": epoch,
        "step": run.step,
        "beta": beta,
        "lr": setup.scheduler.get_last_lr()[0],
        "train_loss": mean_loss,
        "train_recon": mean_recon,
        "train_kl": mean_kl,
        "train_seconds": seconds,
        "train_sents_per_s": len(setup.dec_rows) / seconds,
        "encoder_passes": setup.feature_cache.misses,
    }


def format_record(record: dict[str, Any]) -> str:
    """One log line per epoch."""
    parts = [f"epoch {record['epoch']}", f"loss {record['train_loss']:.2f}"]
    for key, label, fmt in (
        ("eval_recon_nll", "eval rec", ".2f"),
        ("eval_kl", "kl", ".2f"),
        ("eval_token_accuracy", "tok acc", ".3f"),
        ("eval_bleu", "bleu", ".3f"),
        ("eval_exact_match", "exact", ".3f"),
        ("eval_loop_rate", "loops", ".2f"),
        ("eval_eos_rate", "eos", ".2f"),
        ("eval_active_units", "AU", ".0f"),
    ):
        if key in record:
            parts.append(f"{label} {record[key]:{fmt}}")
    parts.append(f"{record['train_sents_per_s']:.0f} sent/s")
    return " | ".join(parts)
