"""What a run keeps between epochs and across a restart: checkpoints, history and resume state.

``<out>/best`` and ``<out>/last`` are written atomically (staged beside the target, then
renamed) and each loads with :meth:`LanguageVAE.from_pretrained`; ``last`` also holds the
optimizer and the scheduler position, so an interrupted run resumes after its last finished
epoch.  ``history.jsonl`` is rewritten whole and atomically each epoch, before the
checkpoints; on resume, records past ``last`` are dropped.

A process killed at any point of this leaves a run that resumes: :func:`recover_run` puts back
a checkpoint swapped out by an interrupted swap and removes what unfinished saves left; a
failed save (a full disk, a read-only folder) removes its staging folder and raises
:class:`CheckpointError`, keeping the previous checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from lmvae.checkpoint import (
    load_optimizer,
    load_trainable_weights,
    recover_swap,
    replace_directory,
    save_optimizer,
    save_pretrained,
)
from lmvae.errors import CheckpointError, DataError
from lmvae.model import LanguageVAE
from lmvae.textfiles import atomic_write

TRAINER_STATE = "trainer_state.json"
STEPS = "steps"  # step checkpoints, lmvae.training.steps
HISTORY = "history.jsonl"
HIGHER_IS_BETTER = ("bleu", "exact_match", "token_accuracy", "word_accuracy")


@dataclass
class TrainResult:
    """What a run leaves behind besides its checkpoints."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_dir: Path | None = None
    last_dir: Path | None = None
    seconds: float = 0.0
    #: What reading the corpora quietly changed: sentences cut at max_length, word labels
    #: outside the model's vocabulary (also passed to the ``log`` callback).
    notes: list[str] = field(default_factory=list)
    #: Why the run ended before its last epoch (early stopping, the time budget), else None.
    stopped: str | None = None


@dataclass
class EpochPosition:
    """Where a step checkpoint left its epoch: batches trained, the epoch's running sums (loss,
    reconstruction, KL), the non-finite counts (NonFiniteGuard) and the last batch's beta."""

    batch: int
    sums: list[float]
    guard: list[float]
    beta: float


@dataclass
class RunState:
    """The bookkeeping of a run: where it is and which epoch was best so far."""

    step: int = 0
    first_epoch: int = 1
    best_score: float = math.inf
    #: Optimizer steps skipped for a non-finite loss or gradient, over the whole run.
    skipped_steps: int = 0
    result: TrainResult = field(default_factory=TrainResult)
    #: Set when resuming from a step checkpoint: where ``first_epoch`` continues.
    position: EpochPosition | None = None

    def score(self, metrics: dict[str, float] | None, best_metric: str, epoch: int) -> float:
        """Lower is better: the held-out ``best_metric`` (negated where higher is better), or
        without an eval split the latest epoch."""
        if metrics is None:
            return -epoch
        value = metrics[best_metric]
        return -value if best_metric in HIGHER_IS_BETTER else value

    def is_best(self, score: float, epoch: int) -> bool:
        if score < self.best_score:
            self.best_score = score
            self.result.best_epoch = epoch
            return True
        return False


def save_checkpoint(
    model: LanguageVAE,
    target: Path,
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write a loadable model folder plus trainer state (and optimizer state, for resuming),
    atomically: staged beside the target, then renamed into place.  ``trainer_state.json`` is
    written last, so a folder holding it is complete.  On failure the staging folder is
    removed and the previous checkpoint stays (CheckpointError)."""
    staging = target.with_name(f".{target.name}.tmp")
    metrics = {k[5:]: v for k, v in state.get("metrics", {}).items() if k.startswith("eval_")}
    try:
        if staging.exists():
            shutil.rmtree(staging)
        save_pretrained(model, staging, metrics=metrics or None)
        if optimizer is not None:
            save_optimizer(optimizer, staging)
        (staging / TRAINER_STATE).write_text(json.dumps(state, indent=2) + "\n")
        replace_directory(staging, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging, ignore_errors=True)
            recover_swap(target)
        raise CheckpointError(
            f"cannot write the checkpoint {target}: {e.strerror or e}; the previous checkpoint "
            "is kept"
        ) from e
    return target


def recover_run(out: Path) -> list[str]:
    """Repair what a killed or failed save left in a run folder, before resuming it: a
    checkpoint swapped out by an interrupted swap is put back (it is complete), and staging
    folders and temporary files of unfinished writes are removed.  One line per repair."""
    notes = []
    for name in ("best", "last"):
        if recover_swap(out / name):
            notes.append(f"{name}/ put back from .{name}.old (a save was killed mid-swap)")
        staging = out / f".{name}.tmp"
        if staging.exists():
            shutil.rmtree(staging)
            notes.append(f"removed .{name}.tmp, left by an unfinished save")
    for kept in (HISTORY, "train_config.json"):
        for tmp in out.glob(f".{kept}.*.tmp"):
            tmp.unlink()
    # Step checkpoints (lmvae.training.steps): staged, or renamed away to be removed.
    for left in sorted((out / STEPS).glob(".step-*")) if (out / STEPS).is_dir() else ():
        if left.name.endswith(".old"):
            if recover_swap(left.with_name(left.name[1:-4])):
                notes.append(f"{STEPS}/{left.name[1:-4]}/ put back (a save was killed mid-swap)")
            continue
        shutil.rmtree(left)
        if left.name.endswith(".tmp"):
            notes.append(f"removed {STEPS}/{left.name}, left by an unfinished save")
    return notes


def write_train_config(out: Path, config: Any) -> None:
    """``train_config.json``: how the run trains, written once the run has started."""
    text = json.dumps(config.to_dict(), indent=2) + "\n"
    atomic_write(out / "train_config.json", lambda p: Path(p).write_text(text))


def json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """The record with NaN and infinities as null: JSON has no spelling for them."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()
    }


def read_history(out: Path) -> list[dict[str, Any]]:
    """The records of history.jsonl; a torn last line (from a version that appended to it)
    is dropped, any other bad line is a DataError."""
    path = out / HISTORY
    if not path.is_file():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().split("\n"), 1) if line.strip()]
    records = []
    for i, (n, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise DataError(f"{path}:{n} is not a JSON record") from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise DataError(f"{path}:{n} is not an epoch record")
        records.append(record)
    return records


def write_history(out: Path, history: list[dict[str, Any]]) -> None:
    """history.jsonl, rewritten whole and atomically: a kill never leaves half a line."""
    text = "".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in history)
    atomic_write(out / HISTORY, lambda p: Path(p).write_text(text))


def scheduler_state(scheduler: LambdaLR) -> dict[str, Any]:
    """The JSON-able part of a LambdaLR state (its lambdas are rebuilt from the config)."""
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def restore(
    model: LanguageVAE, out: Path, optimizer: torch.optim.Optimizer, scheduler: LambdaLR
) -> RunState | None:
    """Load ``out/last`` (weights, optimizer, scheduler, bookkeeping) of an interrupted run;
    None when there is nothing to resume.  History records past the checkpoint are dropped."""
    if not (out / "last" / TRAINER_STATE).is_file():
        return None
    state = json.loads((out / "last" / TRAINER_STATE).read_text())
    load_trainable_weights(model, out / "last")
    load_optimizer(optimizer, out / "last")
    # LambdaLR rebuilds its lambdas from the config; None keeps them as they are.
    lambdas = [None] * len(optimizer.param_groups)
    scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": lambdas})
    run = RunState(
        step=state["step"],
        first_epoch=state["epoch"] + 1,
        best_score=math.inf if state.get("best_score") is None else state["best_score"],
    )
    run.result.best_epoch = state.get("best_epoch", 0)
    # Records of an epoch that finished but was not checkpointed are dropped; of an epoch
    # recorded twice (by older versions) the last one is kept.
    by_epoch = {r["epoch"]: r for r in read_history(out) if r["epoch"] < run.first_epoch}
    run.result.history = [by_epoch[e] for e in sorted(by_epoch)]
    write_history(out, run.result.history)
    return run


def record_epoch(
    model: LanguageVAE,
    out: Path,
    run: RunState,
    record: dict[str, Any],
    best: bool,
    train_config: dict[str, Any],
    scheduler: LambdaLR,
    optimizer: torch.optim.Optimizer,
) -> None:
    """Write history.jsonl (the run's records up to ``record``), then ``best`` (when it is)
    and ``last``."""
    state = {
        "epoch": record["epoch"],
        "step": run.step,
        "best_score": run.best_score if math.isfinite(run.best_score) else None,
        "best_epoch": run.result.best_epoch,
        "scheduler": scheduler_state(scheduler),
        "train_config": train_config,
        "metrics": json_safe(record),
    }
    history = [r for r in run.result.history if r["epoch"] < record["epoch"]] + [record]
    try:
        write_history(out, history)
    except OSError as e:
        raise CheckpointError(
            f"cannot write {out / HISTORY}: {e.strerror or e}; the previous checkpoint is kept"
        ) from e
    if best:
        run.result.best_dir = save_checkpoint(model, out / "best", state)
    run.result.last_dir = save_checkpoint(model, out / "last", state, optimizer)
