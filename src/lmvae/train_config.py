"""How a run trains: :class:`TrainConfig`, saved beside the run (``trainer_state.json``).

Defaults were measured on real pretrained backbones (docs/benchmarks.md); named presets
(:mod:`lmvae.presets`) hold the settings of other kinds of backbones.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lmvae.config import _build
from lmvae.errors import ConfigError


@dataclass
class TrainConfig:
    """How a run trains. Defaults were measured to work on a first run (see docs/benchmarks.md)."""

    epochs: int = 10
    #: Sentences per step.  16 on real backbones: in a fixed time budget the extra steps beat
    #: the larger batch (docs/benchmarks.md); the tiny preset keeps 32.
    batch_size: int = 16
    #: Peak learning rate.  Measured on real pretrained backbones (docs/benchmarks.md): 3e-3;
    #: at 1e-2 the z -> slots projection grows past what a frozen 30-layer decoder reads and
    #: its outputs loop.  Tiny backbones trained on their own corpus want 1e-2 (preset "tiny").
    lr: float = 3e-3
    #: Learning rate of backbone weights that train (LoRA adapters, unfrozen top layers).
    backbone_lr: float = 1e-3
    weight_decay: float = 0.0
    #: Fraction of all steps spent warming the learning rate up linearly.
    warmup_ratio: float = 0.05
    #: Learning-rate schedule after warm-up: "cosine", "linear" or "constant".
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    #: Clip the global gradient norm to this (after backward, before the step); 0 disables.
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    #: Length bucketing: sort each run of this many batches of the shuffled corpus by sentence
    #: length before cutting it into batches, then shuffle the batches (less padding per batch,
    #: still random batches in random order); 0 turns it off.
    bucket_batches: int = 0
    #: Largest beta of the cyclical KL schedule.
    beta_max: float = 1.0
    #: Number of cycles of the beta schedule over the whole run (Fu et al., 2019).
    beta_cycles: int = 4
    #: Fraction of each cycle with beta held at zero.
    beta_zero_ratio: float = 0.0
    #: Fraction of each cycle over which beta ramps linearly from 0 to beta_max.
    beta_ramp_ratio: float = 0.5
    #: Free bits: minimum KL per latent dimension (nats, batch-averaged) below which it is not
    #: penalised, against posterior collapse (Kingma et al., 2016).
    free_bits: float = 1.0
    #: "sum": token cross-entropy summed over each sentence; "mean": averaged per token.
    reconstruction: Literal["sum", "mean"] = "sum"
    #: Fraction of the corpus held out for evaluation (ignored when an eval file is given).
    eval_fraction: float = 0.1
    #: Upper bound on held-out sentences, so evaluation stays cheap on large corpora.
    max_eval_sentences: int = 1000
    #: Held-out figure that picks the best checkpoint: "loss" (the training objective at
    #: beta_max with free bits; it does not punish the KL the free bits allow, as "neg_elbo"
    #: does), "neg_elbo", "recon_nll", "bleu" or "exact_match".
    best_metric: str = "loss"
    #: Number of eval sentences decoded greedily for BLEU / exact match each epoch.
    eval_decode_sentences: int = 200
    seed: int = 0
    #: "no", "bf16" or "fp16"; None picks bf16 on a CUDA device and on CPUs with native bf16
    #: (AMX / AVX-512 BF16), fp32 elsewhere.  On CPU, bf16 holds the frozen decoder in bf16
    #: during the training passes; heads, optimizer, loss and evaluation stay fp32.
    mixed_precision: str | None = None
    #: Bound on the memory of cached encoder features (MiB).
    feature_cache_mb: int = 1024
    #: Folder of an on-disk cache of encoder features (lmvae.feature_store), shared by epochs,
    #: runs and processes; None: features are cached in memory only.
    feature_cache_dir: str | None = None
    #: Bound on that folder (GiB): past it the oldest shards are removed.
    feature_cache_max_gb: float = 10.0
    #: Stop after this many optimizer steps (0: after ``epochs``); the LR and beta schedules
    #: then span these steps, and the corpus is gone over as often as they take (``epochs``
    #: is ignored), the last pass cut short.  For a stream, whose epochs may be long.
    max_steps: int = 0
    #: Show a progress bar.
    progress: bool = True
    #: Time budget: stop after the epoch during which this many minutes of the run have
    #: passed (0: none).  The LR and beta schedules still span ``epochs``, so a run cut short
    #: stops part-way through them (a study's per-cell budget, ``lmvae grid``).
    max_minutes: float = 0.0
    #: torch.compile the decoder's training pass (soft-prompt injection only).  On
    #: MiniLM -> SmolLM2-135M, 2 CPU threads: 1.4x the eager steps/s after ~100 s of
    #: compiling (docs/benchmarks.md), so it pays on runs past a few minutes; needs a C++
    #: compiler on CPU (inductor).
    compile: bool = False
    #: Padding-free batches: a batch's soft prompts and sentences end to end in rows, each
    #: sentence's positions restarting (lmvae.packing), so no compute goes to padding; checked
    #: against the padded pass on a sample batch at the start.  None (auto): packed wherever
    #: the decoder takes a soft prompt and passes that check, padded otherwise; True: packed
    #: or an error; False: padded.  1.4x sentences/s on MiniLM -> SmolLM2-135M, 2 CPU threads.
    pack: bool | None = None
    #: Recompute the decoder's transformer blocks in backward instead of keeping their
    #: activations (soft-prompt injection only): for a decoder whose activations do not fit,
    #: at about a third more compute per step.
    gradient_checkpointing: bool = False
    #: Several processes: shard the frozen decoder's transformer blocks over them (FSDP2),
    #: for a decoder too large for one device; what trains stays whole on each (lmvae.fsdp).
    fsdp: bool = False
    #: Save a resumable step checkpoint (``<out>/steps/step-N``: weights, optimizer, schedule,
    #: position in the epoch, RNG states) every this many optimizer steps; 0: only at epoch
    #: ends.  One is also saved when SIGTERM or SIGINT stops the run.
    save_every: int = 0
    #: How many step checkpoints to keep (the newest).
    keep_last: int = 2
    #: Experiment tracker fed through Accelerate: "none", "tensorboard" (into
    #: ``<out>/tensorboard``), "wandb" or "mlflow".
    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"
    #: Optimizer steps between the tracker's training figures (loss, reconstruction, KL,
    #: beta, lr, sentences/s); epoch figures are logged at every epoch end.
    log_every: int = 50
    #: Early stopping: stop after this many epochs without a better held-out
    #: ``best_metric`` (0: off; without a held-out set it never stops).
    early_stopping_patience: int = 0

    def validate(self) -> None:
        if isinstance(self.feature_cache_dir, os.PathLike):  # a Path given: saved as text
            self.feature_cache_dir = os.fspath(self.feature_cache_dir)
        numbers = ("lr", "backbone_lr", "weight_decay", "max_grad_norm", "beta_max", "free_bits")
        for name in numbers:  # inf or NaN here trains to NaN weights
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be finite, got {value}")
        integers = ("epochs", "batch_size", "gradient_accumulation_steps", "seed", "save_every")
        for name in (*integers, "keep_last", "log_every", "early_stopping_patience", "max_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.backbone_lr > 0, f"backbone_lr must be > 0, got {self.backbone_lr}"),
            (
                0 <= self.warmup_ratio < 1,
                f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}",
            ),
            (
                self.lr_schedule in ("cosine", "linear", "constant"),
                f"unknown lr_schedule {self.lr_schedule!r}",
            ),
            (self.beta_cycles >= 1, f"beta_cycles must be >= 1, got {self.beta_cycles}"),
            (
                self.beta_zero_ratio >= 0
                and self.beta_ramp_ratio >= 0
                and self.beta_zero_ratio + self.beta_ramp_ratio <= 1,
                "beta_zero_ratio + beta_ramp_ratio must lie in [0, 1]",
            ),
            (self.free_bits >= 0, f"free_bits must be >= 0, got {self.free_bits}"),
            (
                self.reconstruction in ("sum", "mean"),
                f"reconstruction must be sum or mean, got {self.reconstruction!r}",
            ),
            (
                0 <= self.eval_fraction < 1,
                f"eval_fraction must be in [0, 1), got {self.eval_fraction}",
            ),
            (self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be >= 1"),
            (self.bucket_batches >= 0, f"bucket_batches must be >= 0, got {self.bucket_batches}"),
            (
                self.best_metric in ("loss", "neg_elbo", "recon_nll", "bleu", "exact_match"),
                f"unknown best_metric {self.best_metric!r}",
            ),
            (
                self.best_metric not in ("bleu", "exact_match") or self.eval_decode_sentences > 0,
                f"best_metric {self.best_metric!r} needs eval_decode_sentences > 0",
            ),
        ]
        checks.append((self.max_minutes >= 0, f"max_minutes must be >= 0, got {self.max_minutes}"))
        checks += [
            (self.save_every >= 0, f"save_every must be >= 0, got {self.save_every}"),
            (self.keep_last >= 1, f"keep_last must be >= 1, got {self.keep_last}"),
            (
                self.report_to in ("none", "tensorboard", "wandb", "mlflow"),
                f"report_to must be none, tensorboard, wandb or mlflow, got {self.report_to!r}",
            ),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (
                self.early_stopping_patience >= 0,
                f"early_stopping_patience must be >= 0, got {self.early_stopping_patience}",
            ),
            (self.max_steps >= 0, f"max_steps must be >= 0, got {self.max_steps}"),
            (
                isinstance(self.feature_cache_max_gb, int | float)
                and self.feature_cache_max_gb > 0,
                f"feature_cache_max_gb must be > 0, got {self.feature_cache_max_gb!r}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        if self.fsdp and self.compile:  # a compiled trunk around sharded blocks: never run
            raise ConfigError("fsdp and compile do not go together: train without one of them")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data)

    @classmethod
    def from_preset(cls, name: str | None, **overrides: Any) -> TrainConfig:
        """The defaults, then the named preset's training settings, then ``overrides``."""
        from lmvae.presets import get_preset

        preset = get_preset(name)
        return _build(cls, {**(preset.train if preset else {}), **overrides})
