"""What the commands share: output formats, the option types they all spell the same way, and
model loading.  Heavy imports (torch, the model) stay inside functions so `lmvae --help` is fast.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer


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


def load_model(model: str, device: str | None):
    from lmvae.model import LanguageVAE

    return LanguageVAE.from_pretrained(model, device=device)


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
TextFieldOpt = Annotated[
    str, typer.Option(help="Field or column holding the text in .jsonl/.json/.csv data.")
]
