"""Frozen encoder features kept per sentence, so the encoder runs once per sentence in training.

With a frozen encoder the pooled features of a sentence never change; the trainer asks this cache
for a batch's features and computes only the ones it lacks.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

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

    def replay(
        self, requests: Iterable[Sequence[int]], fetch: Callable[[list[int]], Tensor]
    ) -> None:
        """Bring an empty cache into the state that serving ``requests`` (each a batch's keys,
        in order) through :meth:`get` would leave, computing only the rows that stay.

        A feature's last bits depend on the batch it was computed in, so a run resumed part-way
        must hold the rows the uninterrupted run holds, each from the same batch.  The
        least-recently-used bookkeeping is replayed on keys alone (every row has one size);
        ``fetch`` (this cache's :meth:`get` with its computation) then recomputes each batch
        that left a row behind, exactly as it was computed, and ``misses`` counts as it would.
        """
        batches = iter(requests)
        first = next(batches, None)
        if first is None:
            return
        first = list(first)
        fetch(first)  # the first batch is all misses: it tells the size of a row
        rows = [r.numel() * r.element_size() for r in self._store.values()]
        capacity = self.max_bytes // rows[0] if rows else 0
        lru: OrderedDict[int, int] = OrderedDict()  # key -> its batch in ``computed``
        # Only the batches that still have a row in the cache are kept: the requests are
        # taken one at a time, so a replay over a long stream holds no more than the cache.
        computed: dict[int, list[int]] = {}
        live: dict[int, int] = {}  # batch -> its rows in the cache
        misses = 0
        for n, keys in enumerate(itertools.chain([first], batches)):
            present = set()
            for k in keys:
                if k in lru:
                    lru.move_to_end(k)
                    present.add(k)
            missing = [k for k in dict.fromkeys(keys) if k not in present]
            if not missing:
                continue
            misses += len(missing)
            computed[n] = missing
            emptied = {n}
            for k in missing:
                lru[k] = n
                live[n] = live.get(n, 0) + 1
                while len(lru) > capacity:
                    _, old = lru.popitem(last=False)
                    live[old] -= 1
                    emptied.add(old)
            for old in emptied:
                if not live.get(old):
                    live.pop(old, None)
                    del computed[old]
        kept: dict[int, Tensor] = {}
        for batch in sorted(computed):
            self._store.clear()
            self._bytes = 0
            for k, row in zip(computed[batch], fetch(computed[batch]), strict=True):
                if lru.get(k) == batch:
                    kept[k] = row.detach().clone()
        self._store = OrderedDict((k, kept[k]) for k in lru)
        self._bytes = sum(row.numel() * row.element_size() for row in self._store.values())
        self.misses = misses
