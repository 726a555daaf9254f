"""Step checkpoints and stop signals: a run stops at any optimizer step and continues there,
ending with the weights and history of the run that was never stopped.

``<out>/steps/step-<N>`` is taken after optimizer step N, every ``TrainConfig.save_every``
steps and when SIGTERM or SIGINT stops the run: the trainable weights (it loads with
``from_pretrained``), the optimizer, and in ``trainer_state.json`` the scheduler, the step
(the position in the beta schedule), the epoch and how many of its batches are done, that
epoch's running sums and non-finite counts, the run's bookkeeping and the global RNG states.
It is written as ``last/`` is (staged, then renamed; ``trainer_state.json`` last), and the
newest ``keep_last`` are kept; an old one is renamed away before it is removed, so a folder
named ``step-N`` is always complete.

What a resumed run needs besides: every epoch's batch order comes from a generator seeded by
(seed, epoch) (:func:`epoch_order`) and the sampling noise from one per sentence
(:func:`lmvae.objective.sentence_noise`), so the position in the epoch is enough to go on;
no training step draws from the global RNGs, whose states are restored all the same.  Cached
encoder features differ in their last bits with the batch they were computed in, so the cache
is replayed (:meth:`FeatureCache.replay`): each row the uninterrupted run would hold is
recomputed in the batch it came from.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import random
import re
import shutil
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from lmvae.checkpoint import load_optimizer, load_trainable_weights
from lmvae.data import EpochBatches, epoch_batches
from lmvae.errors import ConfigError, TrainingInterrupted
from lmvae.model import LanguageVAE
from lmvae.train_config import TrainConfig
from lmvae.training.setup import RunSetup
from lmvae.training.state import (
    STEPS,
    TRAINER_STATE,
    EpochPosition,
    RunState,
    read_history,
    restore,
    save_checkpoint,
    scheduler_state,
    write_history,
)
from lmvae.training.tracking import Tracking

#: Settings that fix which sentences each step trains on: a step checkpoint only continues a
#: run with the same ones.
BATCH_ORDER = ("seed", "batch_size", "gradient_accumulation_steps", "bucket_batches")


def epoch_order(setup: RunSetup, config: TrainConfig, epoch: int) -> Sequence[list[int]]:
    """This process's batches of ``epoch``, the same in every run with the same seed: every
    process draws the same global batches and trains on its rows of each.  Unbucketed, they
    are made batch by batch from the permutation (a corpus may be larger than memory)."""
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    processes = setup.processes
    size = config.batch_size * processes.world
    if not config.bucket_batches:
        return EpochBatches(len(setup.sentences), size, gen, processes.rank, processes.world)
    lengths = setup.sentences.lengths()
    batches = epoch_batches(len(setup.sentences), size, gen, lengths, config.bucket_batches)
    return processes.shard_batches(batches)


class StopRequest:
    """The first SIGTERM or SIGINT received while training (None: none yet)."""

    signum: int | None = None


@contextlib.contextmanager
def stop_signals(enabled: bool) -> Iterator[StopRequest]:
    """Catch SIGTERM and SIGINT for the block: the first one is only recorded (the trainer
    finishes its step, saves and stops), and puts the previous handlers back, so a second one
    acts as before (Ctrl-C raises KeyboardInterrupt at once).  Off outside the main thread."""
    request = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore_handlers() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    def handler(signum: int, frame: Any) -> None:
        request.signum = signum
        restore_handlers()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield request
    finally:
        restore_handlers()


class StepControl:
    """What happens after each optimizer step: the tracker's step figures, step checkpoints
    every ``save_every`` steps, and the stop a signal asked for (save, then
    :class:`TrainingInterrupted`).  Every process stops at the same step; only the main one
    writes."""

    def __init__(
        self,
        model: LanguageVAE,
        setup: RunSetup,
        config: TrainConfig,
        out: Path | None,
        run: RunState,
        stop: StopRequest,
        tracking: Tracking,
    ) -> None:
        self.model, self.setup, self.config, self.out = model, setup, config, out
        self.run, self.stop, self.tracking = run, stop, tracking
        self.bar: Any = None

    def begin_epoch(self, bar: Any, batch: int, sums: torch.Tensor, guard: torch.Tensor) -> None:
        """An epoch starts at ``batch`` (its progress ``bar`` is closed before a stop)."""
        self.bar = bar
        self.tracking.begin(batch, sums, guard)

    def after_step(
        self, epoch: int, batch: int, sums: torch.Tensor, guard: torch.Tensor, beta: float
    ) -> None:
        """Called once optimizer step ``run.step`` has been taken, after ``batch`` batches of
        ``epoch``; ``sums`` are the epoch's running sums and ``guard`` its non-finite counts."""
        step = self.run.step
        lr = self.setup.scheduler.get_last_lr()[0]
        self.tracking.log_step(step, batch, sums, guard, beta, lr)
        processes = self.setup.processes
        stop = self.stop.signum is not None
        if processes.world > 1:  # a collective: every process decides at every step
            stop = processes.any(stop)
        every = self.config.save_every
        if not (stop or (every and step % every == 0)) or self.out is None:
            return
        position = EpochPosition(batch, sums.tolist(), guard.tolist(), beta)
        target = step_dir(self.out, step)
        if processes.is_main:
            save_step(self.model, self.out, self.run, self.setup, self.config, epoch, position)
        if not stop:
            return
        processes.wait()  # no process exits (and has its launcher stop the rest) before this
        if self.bar is not None:
            self.bar.close()
        signum = self.stop.signum or signal.SIGTERM
        name = signal.Signals(signum).name
        raise TrainingInterrupted(
            f"{name} stopped training in epoch {epoch} after step {step}: saved {target}; "
            "continue with --resume",
            signum,
            target,
        )


def step_dir(out: Path, step: int) -> Path:
    return out / STEPS / f"step-{step:08d}"


def step_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """The complete step checkpoints of a run folder, oldest first."""
    found = []
    for path in (out / STEPS).glob("step-*"):
        match = re.fullmatch(r"step-(\d+)", path.name)
        if match and (path / TRAINER_STATE).is_file():
            found.append((int(match[1]), path))
    return sorted(found)


def save_step(
    model: LanguageVAE,
    out: Path,
    run: RunState,
    setup: RunSetup,
    config: TrainConfig,
    epoch: int,
    position: EpochPosition,
) -> Path:
    """Write ``steps/step-<run.step>`` atomically, then remove all but the newest
    ``keep_last``."""
    state = {
        "epoch": epoch,
        "batch": position.batch,
        "step": run.step,
        "beta": position.beta,
        "sums": position.sums,
        "guard": position.guard,
        "best_score": run.best_score if math.isfinite(run.best_score) else None,
        "best_epoch": run.result.best_epoch,
        "skipped_steps": run.skipped_steps,
        "sentences": len(setup.sentences),
        "processes": setup.processes.world,
        "scheduler": scheduler_state(setup.scheduler),
        "train_config": config.to_dict(),
        "rng": rng_state(),
    }
    (out / STEPS).mkdir(exist_ok=True)
    target = save_checkpoint(model, step_dir(out, run.step), state, setup.optimizer)
    for _, old in step_checkpoints(out)[: -config.keep_last]:
        gone = old.with_name(f".{old.name}.del")  # never a half-removed step-N
        old.rename(gone)
        shutil.rmtree(gone)
    return target


def restore_run(
    model: LanguageVAE, out: Path, setup: RunSetup, config: TrainConfig
) -> tuple[RunState, Path] | None:
    """Load the newest checkpoint of an interrupted run: the newest step checkpoint, or
    ``last/`` when it is as far; None when there is none.  The feature cache is replayed to
    where the run was."""
    steps = step_checkpoints(out)
    last_step = -1
    if (out / "last" / TRAINER_STATE).is_file():
        last_step = json.loads((out / "last" / TRAINER_STATE).read_text())["step"]
    if steps and steps[-1][0] > last_step:
        source = steps[-1][1]
        run = restore_step(model, out, source, setup, config)
    else:
        source = out / "last"
        run = restore(model, out, setup.optimizer, setup.scheduler)
    if run is None:
        return None
    replay_features(model, setup, config, run)
    return run, source


def restore_step(
    model: LanguageVAE, out: Path, folder: Path, setup: RunSetup, config: TrainConfig
) -> RunState:
    state = json.loads((folder / TRAINER_STATE).read_text())
    saved = {k: state["train_config"].get(k) for k in BATCH_ORDER}
    saved.update(sentences=state["sentences"], processes=state["processes"])
    now = {k: getattr(config, k) for k in BATCH_ORDER}
    now.update(sentences=len(setup.sentences), processes=setup.processes.world)
    differ = [f"{k} {saved[k]} (now {now[k]})" for k in saved if saved[k] != now[k]]
    if differ:
        raise ConfigError(
            f"{folder} continues a run with other batches: it was taken with "
            f"{', '.join(differ)}; resume with the data and settings of the interrupted run"
        )
    load_trainable_weights(model, folder)
    load_optimizer(setup.optimizer, folder)
    lambdas = [None] * len(setup.optimizer.param_groups)  # rebuilt from the config
    setup.scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": lambdas})
    best = state["best_score"]
    run = RunState(
        step=state["step"],
        first_epoch=state["epoch"],
        best_score=float("inf") if best is None else best,
        skipped_steps=state["skipped_steps"],
    )
    run.result.best_epoch = state["best_epoch"]
    run.position = EpochPosition(state["batch"], state["sums"], state["guard"], state["beta"])
    by_epoch = {r["epoch"]: r for r in read_history(out) if r["epoch"] < run.first_epoch}
    run.result.history = [by_epoch[e] for e in sorted(by_epoch)]
    write_history(out, run.result.history)
    set_rng_state(state["rng"])
    return run


def resume_point(
    run: RunState, epoch: int, counts: torch.Tensor
) -> tuple[int, torch.Tensor, torch.Tensor, float]:
    """Where ``epoch`` starts: batch 0 with zero sums and the given non-finite ``counts``, or
    where a step checkpoint left it (its batch, running sums, counts and beta)."""
    position, run.position = run.position, None
    if position is None or run.first_epoch != epoch:
        return 0, torch.zeros(3, device=counts.device), counts, 0.0
    sums = torch.tensor(position.sums, dtype=torch.float32, device=counts.device)
    counts = torch.tensor(position.guard, dtype=counts.dtype, device=counts.device)
    return position.batch, sums, counts, position.beta


def replay_features(model: LanguageVAE, setup: RunSetup, config: TrainConfig, run: RunState):
    """Fill the training feature cache as the uninterrupted run has it at this point."""
    if model.encoder.backbone_trains:  # features are computed afresh at every step
        return
    done = run.position.batch if run.position is not None else 0

    def requests() -> Iterator[list[int]]:  # one batch at a time: a stream may be long
        for epoch in range(1, run.first_epoch + 1):
            batches = epoch_order(setup, config, epoch)
            yield from batches[:done] if epoch == run.first_epoch else batches

    with (
        torch.no_grad(),
        setup.precision.context(model),
        setup.accelerator.autocast(),
    ):
        setup.feature_cache.replay(requests(), setup.train_features)


def rng_state() -> dict[str, Any]:
    """The global RNG states (python, numpy, torch CPU and CUDA) as JSON."""
    import numpy as np

    def text(tensor: torch.Tensor) -> str:
        return base64.b64encode(tensor.cpu().numpy().tobytes()).decode()

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [
            str(kind),
            base64.b64encode(keys.tobytes()).decode(),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "torch": text(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [text(s) for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    def tensor(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    keys = np.frombuffer(base64.b64decode(keys), dtype=np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    torch.set_rng_state(tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensor(s) for s in state["cuda"]])
