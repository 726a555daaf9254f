"""Corpora larger than memory: a text (one sentence per line) or JSON Lines file read lazily
through an index of line offsets.

:func:`open_stream` reads the file once, keeping per sentence only its byte offset (an int64
array: the index is the one thing of the corpus's size in memory); :class:`LineCorpus` then
reads the lines a batch asks for with positioned reads (``os.pread``, no memory map, so the
pages read count against the page cache, not the process).  The sentences read exactly as
:func:`lmvae.data.read_corpus` reads them: UTF-8 with a byte-order mark dropped, split on
``\\n`` only, stripped, blank lines skipped; a stream and a list of the same file train alike.

Held-out sentences, when no eval file is given, are the lines whose text hashes under the
fraction (:func:`held_out_hash`): deterministic, the same whatever the order of the lines, and a
repeated sentence falls on one side.  At most ``max_eval`` of them are held out (those with the
smallest hashes; copies of the one sentence at that boundary may fall on both sides); the
others train.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import overload

import numpy as np

from lmvae.data import record_text
from lmvae.errors import DataError

#: File suffixes a stream reads: one record per line.
STREAM_SUFFIXES = (".txt", ".jsonl")
_BOM = b"\xef\xbb\xbf"
_HASH_SPAN = float(2**64)


def held_out_hash(text: str) -> int:
    """A 64-bit hash of a sentence's text; it is held out when under ``fraction * 2**64``."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class LineCorpus(Sequence[str]):
    """The sentences of a .txt or .jsonl file, read on demand by index.

    Holds the byte offset of each sentence's line (int64) and an open file descriptor, which
    is reopened in a new process (a pickled or forked copy reads its own).
    """

    def __init__(self, path: Path, offsets: np.ndarray, jsonl: bool, text_field: str) -> None:
        self.path, self.offsets, self.jsonl, self.text_field = path, offsets, jsonl, text_field
        self._fd: int | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return self.texts(range(*index.indices(len(self))))
        if not -len(self) <= index < len(self):
            raise IndexError(f"sentence {index} of {len(self)}")
        return self.texts([index])[0]

    def texts(self, indices: Sequence[int]) -> list[str]:
        """The sentences at ``indices``, in that order."""
        return [self._read(int(self.offsets[i])) for i in indices]

    def _read(self, offset: int) -> str:
        fd = self._file()
        chunks, size, at = [], 256, offset
        while True:
            chunk = os.pread(fd, size, at)
            end = chunk.find(b"\n")
            if end >= 0 or len(chunk) < size:
                chunks.append(chunk if end < 0 else chunk[:end])
                break
            chunks.append(chunk)
            at += len(chunk)
            size = min(size * 4, 1 << 20)
        try:
            line = b"".join(chunks).decode("utf-8").strip()
            text = record_text(json.loads(line), self.text_field, "") if self.jsonl else line
        except (UnicodeDecodeError, json.JSONDecodeError, DataError):
            text = ""
        if not text.strip():  # an index always points at a sentence
            raise DataError(
                f"{self.path} changed after it was indexed (no sentence at byte {offset}): "
                "restart the run to index it again"
            )
        return text.strip()

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except OSError as e:
                raise DataError(f"cannot read the corpus {self.path}: {e.strerror}") from None
            self._pid = os.getpid()
        return self._fd

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def open_stream(
    path: str | Path,
    text_field: str = "text",
    eval_fraction: float = 0.0,
    max_eval: int = 1000,
) -> tuple[LineCorpus, list[str]]:
    """Index ``path`` in one pass: its training sentences as a :class:`LineCorpus`, and the
    held-out sentences (a list of at most ``max_eval``; empty when ``eval_fraction`` is 0).

    Every line is decoded and checked here (UTF-8, no NUL, valid JSON with a string
    ``text_field``), so a bad line fails now with its line number, not hours into training.
    """
    path = Path(path)
    jsonl = _kind(path)
    cut = eval_fraction * _HASH_SPAN
    starts = array("q")  # grows in place: no second copy of the index while it is built
    # The max_eval smallest hashes under the cut: (-hash, offset) in a max-heap.  A line the
    # heap pushes out trains after all; there are about max_eval * ln(lines / max_eval).
    held: list[tuple[int, int]] = []
    displaced: list[int] = []
    with open(path, "rb") as f:
        position = 3 if f.read(3) == _BOM else 0
        f.seek(position)
        for number, raw in enumerate(f, 1):
            start, position = position, position + len(raw)
            text = _line_text(raw, number, path, jsonl, text_field)
            if not text:
                continue
            if cut > 0:
                h = held_out_hash(text)
                if h < cut and len(held) < max_eval:
                    heapq.heappush(held, (-h, start))
                    continue
                if h < cut and held and h < -held[0][0]:
                    displaced.append(heapq.heappushpop(held, (-h, start))[1])
                    continue
            starts.append(start)
    offsets = np.frombuffer(starts, dtype=np.int64) if starts else np.zeros(0, np.int64)
    if displaced:  # back into file order
        extra = np.sort(np.asarray(displaced, dtype=np.int64))
        offsets = np.insert(offsets, np.searchsorted(offsets, extra), extra)
    if not len(offsets):
        what = "no sentences" if not held else "no sentences besides the held-out ones"
        raise DataError(f"corpus {path} holds {what}")
    # Held-out sentences in hash order: the same whatever the order of the file.
    chosen = np.asarray([offset for _, offset in sorted((-neg, o) for neg, o in held)], np.int64)
    held_out = LineCorpus(path, chosen, jsonl, text_field)[:]
    return LineCorpus(path, offsets, jsonl, text_field), held_out


def _kind(path: Path) -> bool:
    """True for JSON Lines; a file that cannot be streamed is a DataError."""
    if str(path).startswith("hf:"):
        raise DataError(_hf_refusal(str(path)[3:]))
    if not path.is_file():
        raise DataError(
            f"corpus file {path} does not exist" if not path.exists() else f"{path} is not a file"
        )
    suffix = path.suffix.lower()
    if suffix in (".json", ".csv", ".tsv"):
        raise DataError(
            f"{path}: a streamed corpus is a .txt (one sentence per line) or .jsonl file, not "
            f"{suffix}: convert it, or train without --stream"
        )
    return suffix == ".jsonl"


def _hf_refusal(name: str) -> str:
    import importlib.util

    if importlib.util.find_spec("datasets") is None:
        return (
            f"--data hf:{name} streams a Hugging Face dataset, which needs the datasets "
            "package: pip install 'lmvae[datasets]'"
        )
    return (
        f"--data hf:{name}: streaming a Hugging Face dataset is not supported yet; save it "
        "as JSON Lines (datasets' to_json) and stream that file"
    )


def _line_text(raw: bytes, number: int, path: Path, jsonl: bool, field: str) -> str:
    """The sentence of one line as :func:`lmvae.data.read_corpus` would read it ('' to skip)."""
    where = f"{path}:{number}"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if "\x00" in line:
        raise DataError(f"{where}: not text, the line holds a NUL byte")
    line = line.strip()
    if not jsonl or not line:
        return line
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg})") from None
    return record_text(record, field, where).strip()
