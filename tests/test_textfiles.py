"""lmvae.textfiles: the one reader of users' text and JSON Lines files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lmvae.errors import DataError
from lmvae.probes.sts import read_sts_pairs
from lmvae.textfiles import atomic_write, jsonl_records, read_text


def test_read_text_drops_a_byte_order_mark_and_names_a_non_utf8_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfhello\n")
    assert read_text(path) == "hello\n"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match=r"a\.txt is not UTF-8 text"):
        read_text(path)


def test_jsonl_records_number_lines_skip_blanks_and_keep_u2028(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"t": "a\u2028b"}\n\n  \n[1, 2]\n', encoding="utf-8")
    assert jsonl_records(path) == [(f"{path}:1", {"t": "a\u2028b"}), (f"{path}:4", [1, 2])]
    path.write_text('{"t": 1}\n{oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"r\.jsonl:2: not valid JSON"):
        jsonl_records(path)


def test_sts_pairs_read_through_it(tmp_path):
    # A sentence holding U+2028 stays one line (splitlines() used to cut it in two).
    path = tmp_path / "pairs.jsonl"
    lines = ['{"s1": "a\u2028b", "s2": "c", "score": 3}'] + [
        f'{{"s1": "x{i}", "s2": "y", "score": {i}}}' for i in range(2)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_sts_pairs(path) == [("a\u2028b", "c", 3.0), ("x0", "y", 0.0), ("x1", "y", 1.0)]


def test_atomic_writes_get_the_umasks_mode_or_keep_the_replaced_files(tmp_path):
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.json"
        atomic_write(fresh, lambda tmp: Path(tmp).write_text("{}"))
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's private 0600
        fresh.chmod(0o640)
        atomic_write(fresh, lambda tmp: Path(tmp).write_text("[]"))
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640 and fresh.read_text() == "[]"
    finally:
        os.umask(old)
