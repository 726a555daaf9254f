"""Frozen encoder features kept per sentence, so the encoder runs once per sentence in training.

With a frozen encoder the pooled features of a sentence never change; the trainer asks this cache
for a batch's features and computes only the ones it lacks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import Tensor


class FeatureCache:
    """Frozen encoder features per sentence index, evicting least-recently-used past a byte bound.

    With the bound above the corpus size (the usual case) the encoder runs once per sentence.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._store: OrderedDict[int, Tensor] = OrderedDict()
        self._bytes = 0
        self.misses = 0

    def get(self, keys: Sequence[int], compute: Callable[[list[int]], Tensor]) -> Tensor:
        """Features for keys (B, S, H), computing only the missing ones in one batch."""
        rows: dict[int, Tensor] = {}
        for k in keys:
            if k in self._store:
                self._store.move_to_end(k)
                rows[k] = self._store[k]
        missing = [k for k in dict.fromkeys(keys) if k not in rows]
        if missing:
            self.misses += len(missing)
            for k, row in zip(missing, compute(missing), strict=True):
                rows[k] = row.detach()
                self._put(k, rows[k])
        return torch.stack([rows[k] for k in keys])

    def _put(self, key: int, row: Tensor) -> None:
        row = row.clone()  # a view would keep the whole batch tensor alive
        size = row.numel() * row.element_size()
        if size > self.max_bytes:
            return
        self._store[key] = row
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, old = self._store.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()
