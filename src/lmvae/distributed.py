"""Several training processes: which one this is, the few collectives the trainer needs, and a
launcher for ``lmvae train --num-processes N``.

Processes are started the way ``torchrun`` and ``accelerate launch`` start them (the
``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` environment), so a run started by any of the three
reads the same; Accelerate's ``PartialState`` joins the process group (NCCL on GPUs, gloo on
CPU).  Everything here is a no-op for a single process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from lmvae.errors import TrainingInterrupted

T = TypeVar("T")


@dataclass(frozen=True)
class Processes:
    """This process's place among the run's processes, and the collectives between them."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, history and logs."""
        return self.rank == 0

    def sum(self, tensor: Tensor) -> Tensor:
        """The tensor summed over the processes (a new tensor; no gradient flows through)."""
        if self.world == 1:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total

    def any(self, flag: bool) -> bool:
        """Whether any process says so: decisions that end a loop must agree everywhere."""
        if self.world == 1:
            return flag
        return bool(self.sum(torch.tensor([float(flag)], device=_device())).item())

    def all(self, flag: bool) -> bool:
        """Whether every process says so."""
        return not self.any(not flag)

    def gather(self, items: list[T]) -> list[T]:
        """Every process's items, in rank order (picklable objects, e.g. CPU tensors)."""
        if self.world == 1:
            return list(items)
        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, items)
        return [item for part in parts for item in part]

    def wait(self) -> None:
        """Block until every process gets here."""
        if self.world > 1:
            dist.barrier()

    def shard_batches(self, batches: Sequence[list[int]]) -> list[list[int]]:
        """This process's share of every global batch: rows ``rank::world``, so the union over
        processes is the batch one process would train on.  A last batch with fewer rows than
        processes is left out (every process must step together)."""
        if self.world == 1:
            return list(batches)
        return [b[self.rank :: self.world] for b in batches if len(b) >= self.world]

    def batch_count(self, num_items: int, global_batch: int) -> int:
        """How many global batches :meth:`shard_batches` keeps from ``num_items`` items."""
        full, rest = divmod(num_items, global_batch)
        return full + (rest >= self.world if self.world > 1 else rest > 0)


def _device() -> torch.device:
    from accelerate import PartialState

    return PartialState().device


def current_processes() -> Processes:
    """Join the run's processes (once per process; a plain run is one process).

    Accelerate only uses gloo for a CPU run when told it is on CPU, so a machine without an
    accelerator says so here, before anything else builds Accelerate's process-wide state.
    """
    from accelerate import PartialState

    state = PartialState(cpu=not torch.accelerator.is_available())
    return Processes(state.process_index, state.num_processes)


def is_main_process() -> bool:
    """Whether this process prints and writes: rank 0, or no launcher at all (no collectives,
    so the command line can ask before it builds anything)."""
    return int(os.environ.get("RANK", "0")) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(command: list[str], num_processes: int, env: dict[str, str] | None = None) -> int:
    """Run ``command`` as ``num_processes`` processes of one run on this machine, as torchrun
    does (rank, world size and a rendezvous address in the environment); returns the first
    non-zero exit code, or 0.  When one process fails the others are stopped: they would wait
    for it forever in their next collective.  A SIGINT or SIGTERM sent here is passed on to
    every process, which then stop together (exit code 75, TrainingInterrupted)."""
    base = {**os.environ, **(env or {})}
    base.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        WORLD_SIZE=str(num_processes),
        LOCAL_WORLD_SIZE=str(num_processes),
    )
    base.setdefault("OMP_NUM_THREADS", "1")
    # The workers get a session of their own, so a signal reaches them once, through here:
    # each SIGINT / SIGTERM is passed on (the first one makes them save a step checkpoint and
    # stop together, a second one aborts them), and SIGHUP too.
    workers = [
        subprocess.Popen(
            command, env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}, start_new_session=True
        )
        for r in range(num_processes)
    ]

    forwarded = []

    def forward(signum: int, frame: Any) -> None:
        forwarded.append(signum)
        for w in workers:
            if w.poll() is None:
                w.send_signal(signum)

    passed_on = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, forward) for s in passed_on}
    code = 0
    try:
        while any(w.poll() is None for w in workers):
            failed = [w.returncode for w in workers if w.returncode not in (None, 0)]
            # After a stop was passed on, the rest are saving or about to: wait for them.
            stopping = forwarded and all(c == TrainingInterrupted.exit_code for c in failed)
            if failed and not stopping:
                code = failed[0]
                break
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    return code or next((w.returncode for w in workers if w.returncode), 0)


def relaunch_without(option: str, num_processes: int) -> int:
    """Start this very command line again as ``num_processes`` processes, without ``option``
    and its value (``lmvae train --num-processes N`` runs N ``lmvae train`` processes)."""
    argv = list(sys.orig_argv[1:])
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return launch([sys.executable, *kept], num_processes)
