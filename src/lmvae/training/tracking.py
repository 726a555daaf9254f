"""What a run reports and when it ends early: its lines through the ``logging`` module, its
figures to an experiment tracker, and early stopping on the held-out metric.

The trainer's lines go to the ``log`` callback when one is given, else to the
``lmvae.training`` logger at INFO (lmvae adds no handler: an application, or ``lmvae train``,
decides where they go).  Trackers are Accelerate's own (TensorBoard, Weights & Biases,
MLflow), run on the main process only.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lmvae.distributed import Processes
from lmvae.errors import ConfigError
from lmvae.train_config import TrainConfig

LOGGER = logging.getLogger("lmvae.training")
#: report_to -> the package its tracker needs (either one, for TensorBoard).
TRACKER_PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
}


def route_log(log: Callable[[str], None] | None) -> Callable[[str], None]:
    """The trainer's lines: to the caller's callback, else to the ``lmvae.training`` logger."""
    return log if log is not None else LOGGER.info


def check_tracker(report_to: str, out: Path | None) -> None:
    """Refuse a tracker whose package is missing, before anything is loaded or written."""
    if report_to == "none":
        return
    packages = TRACKER_PACKAGES[report_to]
    if not any(importlib.util.find_spec(p) is not None for p in packages):
        raise ConfigError(
            f"--report-to {report_to} needs the {packages[0]} package: pip install {packages[0]}"
        )
    if report_to == "tensorboard" and out is None:
        raise ConfigError("report_to tensorboard writes into the run folder: give out_dir")


class Tracking:
    """The run's experiment tracker (none unless ``config.report_to`` names one), fed through
    the Accelerator: ``init_trackers``, ``log``, and ``finish`` at the end (not
    ``end_training``, which also takes the process group down).  A no-op on processes other
    than the main one."""

    def __init__(self, config: TrainConfig, out: Path | None, processes: Processes) -> None:
        self.config, self.out, self.processes = config, out, processes
        self.accelerator: Any = None
        self.tracker: Any = None
        self._last: tuple[int, list[float], float] = (0, [0.0] * 4, 0.0)  # batch, sums, time

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tracker is not None:
            self.tracker.finish()
            self.accelerator.trackers.remove(self.tracker)
            self.tracker = None

    def start(self, accelerator: Any, model: Any) -> None:
        """Open the tracker with the run's settings (the training ones and the model's main
        ones) as its configuration."""
        name = self.config.report_to
        if name == "none" or not self.processes.is_main:
            return
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        tracker_class = LOGGER_TYPE_TO_CLASS[name]
        run_name = self.out.name if self.out is not None else "lmvae"
        if name == "tensorboard":
            tracker = tracker_class("tensorboard", self.out)  # <out>/tensorboard
        elif name == "wandb":
            tracker = tracker_class("lmvae", name=run_name)
        else:
            tracker = tracker_class("lmvae", run_name=run_name)
        # A tracker object in log_with is taken as it is: init_trackers starts it and stores
        # the configuration.
        accelerator.log_with = [tracker]
        model_config = model.config
        hparams = {
            **self.config.to_dict(),
            "latent_size": model_config.latent_size,
            "encoder": model_config.encoder.backbone.name_or_path,
            "decoder": model_config.decoder.backbone.name_or_path,
            "injection": model_config.decoder.injection,
        }
        values = {k: v for k, v in hparams.items() if isinstance(v, bool | int | float | str)}
        accelerator.init_trackers("lmvae", config=values)
        self.accelerator, self.tracker = accelerator, tracker

    def begin(self, batch: int, sums: torch.Tensor, guard: torch.Tensor) -> None:
        """Where an epoch's figures start: batch 0, or where a resumed epoch goes on."""
        if self.tracker is not None:
            self._last = (batch, [*sums.tolist(), float(guard[0])], time.perf_counter())

    def log_step(
        self, step: int, batch: int, sums: torch.Tensor, guard: torch.Tensor, beta: float, lr: float
    ) -> None:
        """Every ``log_every`` steps: the means since the last report (one host sync)."""
        if self.tracker is None or step % self.config.log_every:
            return
        now = time.perf_counter()
        values = [*sums.tolist(), float(guard[0])]  # loss, reconstruction, KL, finite batches
        last_batch, last_values, last_time = self._last
        delta = [a - b for a, b in zip(values, last_values, strict=True)]
        n = max(delta[3], 1.0)
        sentences = (batch - last_batch) * self.config.batch_size * self.processes.world
        figures = {
            "train/loss": delta[0] / n,
            "train/reconstruction": delta[1] / n,
            "train/kl": delta[2] / n,
            "train/beta": beta,
            "train/lr": lr,
            "train/sentences_per_s": sentences / max(now - last_time, 1e-9),
        }
        self.accelerator.log(figures, step=step)
        self._last = (batch, values, now)

    def log_epoch(self, record: dict[str, Any]) -> None:
        """An epoch's record: training figures under ``epoch/``, held-out ones under
        ``eval/``, and why the run stopped, if it did."""
        if self.tracker is None:
            return
        figures: dict[str, Any] = {}
        for key, value in record.items():
            if key in ("epoch", "step") or isinstance(value, bool):
                continue
            name = f"eval/{key[5:]}" if key.startswith("eval_") else f"epoch/{key}"
            if isinstance(value, str) or (isinstance(value, int | float) and math.isfinite(value)):
                figures[name] = value
        self.accelerator.log(figures, step=record["step"])


def stop_reason(
    config: TrainConfig,
    epoch: int,
    best_epoch: int,
    held_out: bool,
    seconds: float,
    processes: Processes,
) -> str | None:
    """Why the run stops after ``epoch`` before its last one: early stopping (no better
    held-out ``best_metric`` for ``early_stopping_patience`` epochs) or the time budget;
    the same on every process."""
    budget = 60 * config.max_minutes
    if processes.any(bool(budget) and seconds >= budget):
        return f"the {config.max_minutes:g}-minute budget is spent"
    patience = config.early_stopping_patience
    if patience and held_out and epoch - best_epoch >= patience:
        return (
            f"early stopping: held-out {config.best_metric} has not improved for {patience} "
            f"epoch(s) (best at epoch {best_epoch})"
        )
    return None


def global_batch(config: TrainConfig, world: int) -> str:
    """What one optimizer step averages over, said once at the start."""
    accumulation = config.gradient_accumulation_steps
    return (
        f"global batch {config.batch_size * world * accumulation} = {config.batch_size} per "
        f"process x {world} process(es) x {accumulation} accumulation step(s)"
    )


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
