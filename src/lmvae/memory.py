"""Handing freed heap memory back to the operating system.

glibc keeps freed memory in its heaps and returns it only when the top of a heap is free; a
training loop that allocates tensors of a different size every step fragments them, and the
process's resident memory creeps up by tens of MB although PyTorch holds no more tensors.
``malloc_trim`` returns the free pages at once.  Elsewhere (macOS, musl, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache


@cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS; True if anything could be done."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
