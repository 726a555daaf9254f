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
from lmvae.distributed import Processes, current_processes
from lmvae.errors import ConfigError, TrainingDiverged
from lmvae.evaluation import device_batch, evaluate
from lmvae.inputs import check_corpus
from lmvae.memory import release_free_memory
from lmvae.model import LanguageVAE
from lmvae.objective import cyclical_beta, elbo_loss, sentence_noise
from lmvae.train_config import TrainConfig
from lmvae.training import steps, tracking
from lmvae.training.runfolder import check_run_folder, clear_run, run_lock
from lmvae.training.setup import RunSetup, prepare_run
from lmvae.training.state import (
    RunState,
    TrainResult,
    record_epoch,
    recover_run,
    write_train_config,
)
from lmvae.training.tracking import format_record, global_batch

_POSTFIX_EVERY = 10  # batches between progress-bar updates (each one reads the device)
_TRIM_EVERY = 32  # batches between handing freed heap pages back to the OS (lmvae.memory)
#: Optimizer steps in a row with a non-finite loss or gradient (each one skipped) after which
#: the run stops; the count is read every _POSTFIX_EVERY batches, with the progress figures.
MAX_NONFINITE_IN_A_ROW = 8


def train(
    model: LanguageVAE,
    train_texts: Sequence[str] | AnnotatedCorpus,
    eval_texts: Sequence[str] | AnnotatedCorpus = (),
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    resume: bool = False,
    overwrite: bool = True,
) -> TrainResult:
    """Train the model's heads in place and return the per-epoch history.

    ``out_dir`` receives ``best/`` (best held-out ``config.best_metric``, or the last epoch
    without an eval split), ``last/`` (with optimizer state), ``history.jsonl`` and step
    checkpoints (``steps/``, every ``config.save_every`` steps and when SIGTERM or SIGINT
    stops the run, which then raises TrainingInterrupted).  With ``resume=True`` an
    interrupted run continues from its newest checkpoint, mid-epoch from a step checkpoint,
    and ends as the uninterrupted run would (:mod:`.steps`); with nothing to resume it is an
    error.  ``overwrite=False`` refuses a folder that already holds a run (``lmvae train``
    without --overwrite).  The folder is locked for the run: a second run into it fails at
    once, naming the holder.  Lines go to ``log``, else to the ``lmvae.training`` logger.

    Started as several processes (``accelerate launch``, ``torchrun``, ``lmvae train
    --num-processes``), each trains on its share of every batch (``config.batch_size`` rows
    each) and only the main process logs and writes to ``out_dir``.
    """
    config = config or TrainConfig()
    config.validate()
    for name, texts in (("train_texts", train_texts), ("eval_texts", eval_texts)):
        check_corpus(name, texts)
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ConfigError("resume needs the run folder (out_dir) of the interrupted run")
    tracking.check_tracker(config.report_to, out)
    processes = current_processes()
    log = tracking.route_log(log) if processes.is_main else None
    if out is None:
        return _train(model, train_texts, eval_texts, config, None, log, False, processes)
    if not processes.is_main:
        processes.wait()  # until the main process has checked and prepared the folder
        return _train(model, train_texts, eval_texts, config, out, log, resume, processes)
    check_run_folder(out, resume, overwrite)
    with run_lock(out):
        check_run_folder(out, resume, overwrite)  # again, now that no other run can write
        if resume:
            for note in recover_run(out):
                if log is not None:
                    log(note)
        else:
            clear_run(out)
        processes.wait()
        return _train(model, train_texts, eval_texts, config, out, log, resume, processes)


def _train(
    model: LanguageVAE,
    train_texts: Sequence[str] | AnnotatedCorpus,
    eval_texts: Sequence[str] | AnnotatedCorpus,
    config: TrainConfig,
    out: Path | None,
    log: Callable[[str], None] | None,
    resume: bool,
    processes: Processes,
) -> TrainResult:
    # A signal stops the run at the end of a step; the tracker is closed however it ends.
    stop_signals = steps.stop_signals(out is not None)
    with stop_signals as stop, tracking.Tracking(config, out, processes) as tracker:
        return _run(
            model, train_texts, eval_texts, config, out, log, resume, processes, stop, tracker
        )


def _run(
    model: LanguageVAE,
    train_texts: Sequence[str] | AnnotatedCorpus,
    eval_texts: Sequence[str] | AnnotatedCorpus,
    config: TrainConfig,
    out: Path | None,
    log: Callable[[str], None] | None,
    resume: bool,
    processes: Processes,
    stop: steps.StopRequest,
    tracker: tracking.Tracking,
) -> TrainResult:
    set_seed(config.seed)
    started = time.perf_counter()
    setup = prepare_run(model, train_texts, eval_texts, config, not resume, processes)
    if log is not None and processes.world * config.gradient_accumulation_steps > 1:
        log(global_batch(config, processes.world))
    run = RunState()
    for note in setup.notes:
        if log is not None:
            log(note)
    if resume:
        restored = steps.restore_run(model, out, setup, config)
        if restored is not None:
            run, source = restored
            if log is not None and run.position is not None:
                at = f"epoch {run.first_epoch} after batch {run.position.batch}"
                log(f"resuming {at} (step {run.step}) from {source}")
            elif log is not None:
                log(f"resuming after epoch {run.first_epoch - 1} from {source}")
    writes = out is not None and processes.is_main
    if writes:
        write_train_config(out, config)
    tracker.start(setup.accelerator, model)
    control = steps.StepControl(model, setup, config, out, run, stop, tracker)

    for epoch in range(run.first_epoch, setup.epochs + 1):
        record = train_epoch(model, setup, config, run, epoch, control)
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
                processes=processes,
            )
            record.update({f"eval_{k}": v for k, v in metrics.items()})
        run.result.history.append(record)
        if log is not None:
            log(format_record(record))
        best = run.is_best(run.score(metrics, config.best_metric, epoch), epoch)
        seconds = time.perf_counter() - started
        held_out = metrics is not None
        best_epoch = run.result.best_epoch
        stopped = tracking.stop_reason(config, epoch, best_epoch, held_out, seconds, processes)
        if stopped:
            record["stopped"] = run.result.stopped = stopped
        if writes:
            record_epoch(
                model, out, run, record, best, config.to_dict(), setup.scheduler, setup.optimizer
            )
        tracker.log_epoch(record)
        if stopped:  # the same on every process
            if log is not None:
                log(f"stopping after epoch {epoch}: {stopped}")
            break
    store = setup.feature_store
    if log is not None and store is not None:
        log(
            f"feature cache {store.dir}: {store.hits} sentences read, {store.computed} computed "
            f"by the encoder and stored"
        )
    result = run.result
    result.notes = setup.notes
    if out is not None and result.best_dir is None and (out / "best").is_dir():
        result.best_dir = out / "best"
    if setup.forward is not model:
        setup.accelerator.unwrap_model(setup.forward, keep_fp32_wrapper=False)
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


def train_epoch(
    model: LanguageVAE,
    setup: RunSetup,
    config: TrainConfig,
    run: RunState,
    epoch: int,
    control: steps.StepControl,
) -> dict[str, Any]:
    """One pass over the shuffled training batches (from where a step checkpoint left it, up
    to ``config.max_steps``); returns the epoch's training record."""
    accelerator = setup.accelerator
    params = [p for p in model.parameters() if p.requires_grad]
    accumulation = config.gradient_accumulation_steps
    n_batches = setup.n_batches
    epoch_start = time.perf_counter()
    # Running sums stay on the device: reading them back is a host sync, done only to log.
    # Non-finite bookkeeping, on the device too: finite batches summed, skipped steps, the
    # current run of skipped steps and the longest one.
    guard = NonFiniteGuard(accelerator.device)
    # Loss, reconstruction and KL sums; a step checkpoint resumes the epoch part-way.
    start, sums, guard.counts, beta = steps.resume_point(run, epoch, guard.counts)
    processes = setup.processes
    batches = steps.epoch_order(setup, config, epoch)
    noise_width = model.latent_size + 1
    bar = tqdm(
        batches[start:],
        initial=start,
        total=len(batches),
        desc=f"epoch {epoch}/{setup.epochs}",
        disable=not (config.progress and processes.is_main),
        leave=False,
        dynamic_ncols=True,
    )
    control.begin_epoch(bar, start, sums, guard.counts)
    end = start  # batches done at the end of this call
    with setup.precision.context(model):
        for batch_index, indices in enumerate(bar, start):
            end = batch_index + 1
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
            no_sync = contextlib.nullcontext() if sync else accelerator.no_sync(setup.forward)
            with no_sync, accelerator.autocast():
                features = setup.train_features(indices)
                batch = model.codec.collate(
                    setup.sentences.rows(indices), setup.precision.pad_multiple
                )
                batch.update(setup.train_cond.batch(indices, batch["input_ids"].shape[1]))
                noise = sentence_noise(indices, config.seed, epoch, noise_width)
                output = setup.forward(
                    **device_batch(model, batch), features=features, noise=noise.to(model.device)
                )
                terms = elbo_loss(
                    output.tokens.nll,
                    output.tokens.num_tokens,
                    output.kl_per_dim,
                    beta,
                    config.free_bits,
                    config.reconstruction,
                    processes.sum if processes.world > 1 else None,
                )
                # DDP averages the processes' gradients; each holds its part of the sum.
                setup.backward(terms.loss * (processes.world / group_size))
            values = torch.stack([terms.loss.detach(), terms.reconstruction, terms.kl]).float()
            finite = guard.see_batch(values)
            sums += torch.where(finite, values, 0.0)
            if sync:
                # Clip after backward, on this group's gradients, then step unless a loss or
                # a gradient of the group was not finite (the norm is then NaN or inf).
                if config.max_grad_norm > 0:
                    norm = setup.clip_grad_norm(params, config.max_grad_norm)
                else:
                    norm = grad_norm(params)
                guard.step(setup.optimizer, norm)
                setup.scheduler.step()
                setup.optimizer.zero_grad(set_to_none=True)
                run.step += 1
                control.after_step(epoch, batch_index + 1, sums, guard.counts, beta)
            if batch_index % _TRIM_EVERY == 0:
                release_free_memory()  # batch shapes vary: keep the heap from creeping
            done = bool(config.max_steps) and sync and run.step >= config.max_steps
            last = batch_index + 1 == n_batches or done
            if batch_index % _POSTFIX_EVERY == _POSTFIX_EVERY - 1 or last:
                guard.check(epoch, run.step)
            if config.progress and (batch_index % _POSTFIX_EVERY == 0 or last):
                shown = [f"{v:.2f}" for v in (sums / guard.finite_batches()).tolist()]
                bar.set_postfix(
                    loss=shown[0], rec=shown[1], kl=shown[2], beta=f"{beta:.2f}", refresh=False
                )
            if done:
                break
    bar.close()
    if setup.feature_store is not None:
        setup.feature_store.flush()  # this epoch's new features, for the next epoch and run
    seconds = time.perf_counter() - epoch_start
    mean_loss, mean_recon, mean_kl = (sums / guard.finite_batches()).tolist()
    skipped = guard.skipped()
    run.skipped_steps += skipped
    return {
        "epoch": epoch,
        "step": run.step,
        "beta": beta,
        "lr": setup.scheduler.get_last_lr()[0],
        "train_loss": mean_loss,
        "train_recon": mean_recon,
        "train_kl": mean_kl,
        "train_seconds": seconds,
        "train_sents_per_s": len(setup.sentences) * (end - start) / n_batches / seconds,
        "encoder_passes": encoder_passes(setup),
        "skipped_steps": skipped,
    }


def encoder_passes(setup: RunSetup) -> int:
    """Sentences whose features the run has had to fetch so far, over all processes: from
    the encoder, or with a disk cache (``feature_cache_dir``) from there when it holds them."""
    misses = torch.tensor([float(setup.feature_cache.misses)], device=setup.accelerator.device)
    return int(setup.processes.sum(misses).item())


def grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The global 2-norm of the gradients (what clipping computes), on the device."""
    norms = [torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


class NonFiniteGuard:
    """Skips optimizer steps whose loss or gradients are not finite, without a host sync.

    The fused AdamW (the trainer's optimizer on CPU and CUDA) takes a ``found_inf`` tensor, as
    torch's GradScaler gives it, and leaves weights, moments and step count untouched where it
    is nonzero, all on the device; any other optimizer needs the flag read back (a sync).  The
    counts are read every few batches; ``MAX_NONFINITE_IN_A_ROW`` skipped steps in a row stop
    the run with the weights of the last finite step.
    """

    def __init__(self, device: torch.device) -> None:
        # finite batches, bad batches in the open group, skipped steps, run, longest run
        self.counts = torch.zeros(5, device=device)

    def see_batch(self, values: torch.Tensor) -> torch.Tensor:
        finite = torch.isfinite(values).all()
        self.counts[0] += finite
        self.counts[1] += ~finite
        return finite

    def step(self, optimizer: Any, grad_norm: torch.Tensor) -> None:
        bad = (self.counts[1] > 0) | ~torch.isfinite(torch.as_tensor(grad_norm))
        inner = getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper
        if inner.defaults.get("fused"):
            inner.found_inf = bad.float()
            optimizer.step()
        elif not bool(bad):  # a host sync: only the fused kernels skip on the device
            optimizer.step()
        c = self.counts
        c[2] += bad
        c[3] = (c[3] + 1) * bad
        c[4] = torch.maximum(c[4], c[3])
        c[1] = 0

    def finite_batches(self) -> torch.Tensor:
        return self.counts[0].clamp(min=1)

    def skipped(self) -> int:
        return int(self.counts[2].item())

    def check(self, epoch: int, step: int) -> None:
        """Stop the run after too many skipped steps in a row (one host sync)."""
        longest = int(self.counts[4].item())
        if longest >= MAX_NONFINITE_IN_A_ROW:
            raise TrainingDiverged(
                f"training stopped in epoch {epoch} at step {step}: {longest} optimizer steps "
                "in a row had a non-finite loss or gradient and were skipped (a learning rate "
                "too high, or data the encoder turns into NaN?); the weights are those of the "
                "last finite step, and <out>/last holds the last finished epoch"
            )
