"""The run folder's rules: what a new run may start in, and one run at a time.

A folder that already holds a run is refused unless the caller resumes it or asks to replace
it, and ``resume`` with nothing to resume is an error; both are checked before anything is
written.  A run holds an exclusive lock on ``<out>/.lock`` (``flock``: the kernel drops it when
the process dies, so a killed run leaves no lock that blocks the next one).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from lmvae.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"
#: What a run writes into its folder (the staging and swap names of its checkpoints too).
RUN_ENTRIES = (
    "best",
    "last",
    "history.jsonl",
    "train_config.json",
    ".best.tmp",
    ".last.tmp",
    ".best.old",
    ".last.old",
    "steps",
    "tensorboard",
)


class RunFolderBusy(ConfigError):
    """Another process is training into the same run folder."""


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start where a run already is (unless ``overwrite``), and to resume where
    there is nothing to resume (``overwrite`` does not apply then); writes nothing."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run folder {out} is a file")
    if resume:
        if not resumable(out):
            started = (out / "history.jsonl").is_file() or (out / "train_config.json").is_file()
            raise ConfigError(
                f"nothing to resume in {out}: it has neither a last/ checkpoint of a finished "
                "epoch nor a step checkpoint (steps/)"
                + (
                    " (the run stopped before its first checkpoint was written: start it "
                    "again with --overwrite)"
                    if started
                    else ""
                )
            )
        return
    held = sorted(p.name for p in out.iterdir() if p.name != LOCK) if out.is_dir() else []
    if held and not overwrite:
        raise ConfigError(
            f"{out} is not empty ({', '.join(held[:4])}{', ...' if len(held) > 4 else ''}): "
            "resume the run in it (--resume), replace it (--overwrite), or choose another --out"
        )


def resumable(out: Path) -> bool:
    """Whether ``out`` holds a finished epoch's ``last`` checkpoint (also one swapped out to
    ``.last.old`` by a save killed between its two renames: resuming puts it back) or a
    complete step checkpoint."""
    state = "trainer_state.json"
    if (out / "last" / state).is_file() or any(out.glob(f"steps/step-*/{state}")):
        return True
    return not (out / "last").exists() and (out / ".last.old" / state).is_file()


def clear_run(out: Path) -> None:
    """Remove a previous run's entries (nothing else) before a new run replaces it."""
    for name in RUN_ENTRIES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


_held: dict[Path, tuple[int, int]] = {}  # folder -> (file descriptor, nesting depth)


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold the folder's lock for the block (re-entrant within a process); a second process
    gets :class:`RunFolderBusy` naming the holder."""
    key = out.resolve()
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = _acquire(out / LOCK)
    except OSError as e:  # a read-only or full file system, a folder we may not write
        raise ConfigError(
            f"cannot write in the run folder {out} ({e.strerror or e}): nothing was changed"
        ) from None
    _held[key] = (fd, 1)
    try:
        yield
    finally:
        del _held[key]
        if fcntl is not None:
            with contextlib.suppress(OSError):
                (out / LOCK).unlink()  # still held, so no other process holds this file
        os.close(fd)
        if created:  # a run that failed before writing anything leaves no folder behind
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty


def _acquire(path: Path) -> int:
    """Open and lock ``path``; retried when the file was replaced while we waited for it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunFolderBusy(
                f"run folder {path.parent} is in use by {holder}: wait for it to finish or "
                "choose another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its holder removed it on release: lock the current file instead
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode())
    return fd


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return f"process {info['pid']} on {info['host']} (since {started})"
    except (ValueError, KeyError, OSError, TypeError):
        return "another process"
