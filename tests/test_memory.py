"""lmvae.memory: freed heap pages go back to the OS where glibc allows it."""

from __future__ import annotations

import sys

import pytest

from lmvae import memory


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_returns_freed_fragmented_heap_memory():
    if memory._malloc_trim() is None:
        pytest.skip("not glibc")
    # Many small blocks (below the mmap threshold, so on the heap), then free all but the last
    # one: the heap's top stays in use, so glibc cannot shrink it by itself.
    blocks = [bytearray(60_000) for _ in range(2_000)]  # ~120 MB
    keep = blocks[-1]
    del blocks
    before = _rss_kb()
    assert memory.release_free_memory() is True
    after = _rss_kb()
    assert before - after > 50_000, (before, after)  # at least 50 MB handed back
    assert len(keep) == 60_000
