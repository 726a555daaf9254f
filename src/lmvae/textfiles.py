"""Reading the text files users bring: UTF-8 (a byte-order mark dropped) and JSON Lines; and
writing files atomically.

Every reader of corpora, annotations and probe data goes through here, so they agree on
encodings, line splitting and the one-line errors a bad file gets; every file lmvae writes for
keeps goes through :func:`atomic_write`, so an interrupted write never leaves half a file.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmvae.errors import DataError

#: Control characters that text files hold (tab, line and page breaks); any other C0 control
#: or DEL in more than 1 % of a file's characters, or a NUL anywhere, marks a binary file.
TEXT_CONTROLS = frozenset("\t\n\r\f\v")
CONTROL_SHARE = 0.01


def read_text(path: Path) -> str:
    """File text; a UTF-8 byte-order mark (as Excel and Notepad write) is dropped.  A file
    that is not text (not UTF-8, a NUL byte, many control characters) is a DataError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    check_text(text, str(path))
    return text


def check_text(text: str, where: str) -> None:
    """Refuse what is not text: a NUL character, or control characters (other than tabs and
    line breaks) in more than 1 % of it."""
    nul = text.find("\x00")
    if nul >= 0:
        raise DataError(f"{where} is not a text file: it holds a NUL byte (character {nul})")
    controls = sum(1 for c in text if (c < " " or c == "\x7f") and c not in TEXT_CONTROLS)
    if controls and controls > CONTROL_SHARE * len(text):
        raise DataError(
            f"{where} is not a text file: {controls} of its {len(text)} characters are control "
            "characters"
        )


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


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over
    ``path`` in one step; the temporary file never outlives the call."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); the result gets the mode a plainly created
        # file would have (the umask's), or keeps the one it replaces.
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
