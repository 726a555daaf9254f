"""lmvae.features: each sentence's frozen features computed once, within a byte bound (LRU)."""

from __future__ import annotations

import pytest
import torch

from lmvae.features import FeatureCache

ROW_BYTES = 1 * 4 * 4  # one (1, 4) float32 row


class Computer:
    """compute(keys) for FeatureCache that records which keys it was asked for."""

    def __init__(self):
        self.calls: list[list[int]] = []

    def __call__(self, keys):
        self.calls.append(list(keys))
        return torch.stack([torch.full((1, 4), float(k)) for k in keys])

    @property
    def computed(self):
        return [k for call in self.calls for k in call]


def test_feature_cache_computes_each_key_once():
    cache, compute = FeatureCache(10**6), Computer()
    out = cache.get([3, 1, 2], compute)
    assert out.shape == (3, 1, 4) and out[:, 0, 0].tolist() == [3.0, 1.0, 2.0]
    out = cache.get([2, 5, 3, 5], compute)
    assert out[:, 0, 0].tolist() == [2.0, 5.0, 3.0, 5.0]
    assert compute.calls == [[3, 1, 2], [5, 5]] or compute.calls == [[3, 1, 2], [5]]
    assert cache.misses == len(compute.computed)
    cache.get([1, 2, 3], compute)
    assert len(compute.calls) == 2  # all cached: no call at all


def test_feature_cache_respects_its_byte_bound_lru():
    cache, compute = FeatureCache(2 * ROW_BYTES), Computer()
    cache.get([0], compute)
    cache.get([1], compute)
    cache.get([0], compute)  # touch 0: now 1 is the least recently used
    cache.get([2], compute)  # evicts 1
    assert cache._bytes <= 2 * ROW_BYTES
    assert compute.computed == [0, 1, 2]
    cache.get([0], compute)
    assert compute.computed == [0, 1, 2]  # 0 survived
    cache.get([1], compute)
    assert compute.computed == [0, 1, 2, 1]  # 1 had been evicted
    assert cache._bytes <= 2 * ROW_BYTES and len(cache._store) == 2
    # Stored rows are copies: mutating a result does not corrupt the cache.
    out = cache.get([0], compute)
    out.add_(100.0)
    assert cache.get([0], compute)[0, 0, 0].item() == 0.0


@pytest.mark.parametrize("max_bytes", [0, 2 * ROW_BYTES], ids=["no-cache", "batch-over-bound"])
def test_feature_cache_smaller_than_a_batch_still_returns_features(max_bytes):
    cache, compute = FeatureCache(max_bytes), Computer()
    out = cache.get([0, 1, 2], compute)
    assert out[:, 0, 0].tolist() == [0.0, 1.0, 2.0]
    assert cache._bytes <= max_bytes


@pytest.mark.parametrize("max_bytes", [10_000, 5 * 16, 3 * 16, 1])
def test_replay_leaves_the_cache_as_serving_the_requests_would(max_bytes):
    """Rows depend on the batch they were computed in (as real features do, in their last
    bits): a replayed cache must hold each row from the same batch, in the same LRU order."""
    gen = torch.Generator().manual_seed(0)
    requests = [torch.randperm(12, generator=gen)[:4].tolist() for _ in range(9)]

    def compute(keys):  # (B, 4) float32 rows: 16 bytes each
        return torch.stack([torch.full((4,), k + 0.001 * sum(keys)) for k in keys])

    served = FeatureCache(max_bytes)
    for keys in requests:
        served.get(keys, compute)
    replayed = FeatureCache(max_bytes)
    computed = []

    def fetch(keys):
        computed.append(list(keys))
        return replayed.get(keys, compute)

    replayed.replay(requests, fetch)
    assert list(replayed._store) == list(served._store)
    for k, row in served._store.items():
        assert torch.equal(replayed._store[k], row), k
    assert replayed.misses == served.misses and replayed._bytes == served._bytes
    # Only the batches that left a row behind are computed again (plus one for the row size).
    assert len(computed) <= 1 + len(served._store)
