"""What the commands share: output formats, the option types they all spell the same way, and
model loading.  Heavy imports (torch, the model) stay inside functions so `lmvae --help` is fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from lmvae.errors import LmvaeError


class Format(str, Enum):
    text = "text"
    jsonl = "jsonl"
    json = "json"


def emit(records: list[dict[str, Any]], fmt: Format, text_key: str | None = None) -> None:
    """Print records as JSON lines, one JSON array, or plain text (tab-separated values)."""
    if fmt is Format.jsonl:
        for r in records:
            print(json.dumps(r, ensure_ascii=False))
    elif fmt is Format.json:
        print(json.dumps(records, ensure_ascii=False, indent=2))
    else:
        for r in records:
            if text_key is not None:
                print(r[text_key])
            else:
                print("\t".join(str(v) for v in r.values()))


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def load_model(
    model: str, device: str | None, trust_remote_code: bool = False, allow_pickle: bool = False
):
    from lmvae.model import LanguageVAE

    check_device(device)
    return LanguageVAE.from_pretrained(
        model, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
    )


def check_device(device: str | None) -> None:
    """Refuse a device torch cannot name or this machine does not have, before any loading."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise LmvaeError(f"unknown --device {device!r}: use cpu, cuda, cuda:N or mps") from None
    backend = getattr(torch, dev.type, None) if dev.type != "cpu" else None
    if dev.type == "mps":
        backend = torch.backends.mps
    if dev.type != "cpu" and not (backend is not None and backend.is_available()):
        raise LmvaeError(f"--device {device}: no {dev.type} device on this machine")
    count = getattr(backend, "device_count", lambda: 1)()
    if dev.index is not None and dev.type != "cpu" and dev.index >= count:
        raise LmvaeError(f"--device {device}: this machine has {count} {dev.type} device(s)")


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: Path, option: str = "--out", folder: bool = True) -> None:
    """Refuse an output path that cannot be written (a file where a folder goes or the other
    way round, a read-only place) before any long work; writes nothing that stays."""
    if path.exists() and folder and not path.is_dir():
        raise LmvaeError(f"cannot write {option} {path}: it is a file; give a folder")
    if path.exists() and not folder and path.is_dir():
        raise LmvaeError(f"cannot write {option} {path}: it is a folder; give a file name")
    base = _nearest_existing(path if folder else path.parent)
    if not base.is_dir():
        raise LmvaeError(f"{option} {path}: {base} is a file, not a folder")
    try:  # os.access says yes to root on a read-only mount: try it
        with tempfile.TemporaryFile(dir=base, prefix=".lmvae-write-check"):
            pass
    except OSError as e:
        raise LmvaeError(f"{option} {path}: cannot write in {base} ({e.strerror})") from None
    if not os.access(base, os.W_OK):
        raise LmvaeError(f"{option} {path}: {base} is not writable")


class _Stderr(logging.Handler):
    """Lines of the ``lmvae`` loggers on whatever ``sys.stderr`` is when they are written."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


@contextlib.contextmanager
def show_log(quiet: bool) -> Iterator[None]:
    """Print lmvae's log lines on stderr for the block (only warnings and errors when
    ``quiet``, and on processes other than the main one)."""
    from lmvae.distributed import is_main_process

    logger = logging.getLogger("lmvae")
    handler, before = _Stderr(), (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet or not is_main_process() else logging.INFO)
    logger.propagate = False  # printed here, not again by a root handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]


ModelArg = Annotated[
    str, typer.Argument(help="A folder written by `lmvae train` / save_pretrained, or a hub id.")
]
DataOpt = Annotated[
    Path,
    typer.Option("--data", help="Sentences: .txt (one per line), .jsonl, .json, .csv or .tsv."),
]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
DeviceOpt = Annotated[str | None, typer.Option(help="torch device, e.g. cpu or cuda:0.")]
ThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads for torch.")]
TrustOpt = Annotated[
    bool,
    typer.Option(
        help="Allow code shipped with the backbones to run (never taken from a saved config)."
    ),
]
PickleOpt = Annotated[
    bool,
    typer.Option(
        help="Also load backbones whose weights are pickles (pytorch_model.bin), which can run "
        "code when read; by default only safetensors and GGUF load."
    ),
]
TextFieldOpt = Annotated[
    str, typer.Option(help="Field or column holding the text in .jsonl/.json/.csv data.")
]
LabelsFieldOpt = Annotated[str, typer.Option(help="Per-word label field of JSONL data.")]
