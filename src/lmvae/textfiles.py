"""Reading the text files users bring: UTF-8 (a byte-order mark dropped) and JSON Lines; and
writing files atomically.

Every reader of corpora, annotations and probe data goes through here, so they agree on
encodings, line splitting and the one-line errors a bad file gets; every file lmvae writes for
keeps goes through :func:`atomic_write`, so an interrupted write never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmvae.errors import DataError


def read_text(path: Path) -> str:
    """File text; a UTF-8 byte-order mark (as Excel and Notepad write) is dropped."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def jsonl_records(path: Path) -> list[tuple[str, Any]]:
    """The JSON value on each non-blank line, with its ``path:line`` for error messages."""
    records = []
    # Split on "\n" only: JSON strings may hold U+2028 and other characters splitlines() cuts at.
    for n, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{n}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    return records


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over
    ``path`` in one step; the temporary file never outlives the call."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
