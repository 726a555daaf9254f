"""lmvae.cache: K/V geometry per architecture, the prefix cache and its masks/positions."""

from __future__ import annotations

import types

import pytest
import torch
from support import DECODER_IDS, expected_kv

from lmvae.backbones import load_decoder
from lmvae.cache import cache_kv_shape, kv_shape, position_ids, prefix_attention_mask, prefix_cache
from lmvae.config import BackboneRef
from lmvae.errors import ConfigError


@pytest.fixture(scope="module")
def lms(backbones):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_decoder(BackboneRef(str(backbones.decoder(name))))[0]
        return cache[name]

    return get


@pytest.mark.parametrize("name", DECODER_IDS)
def test_kv_shape_matches_the_spec_and_the_lms_own_cache(lms, name):
    lm = lms(name)
    shape = kv_shape(lm.config)
    layers, kv_heads, head_dim = expected_kv(name)
    assert (shape.num_layers, shape.num_kv_heads, shape.head_dim) == (layers, kv_heads, head_dim)
    assert shape.hidden_size == 64
    _assert_matches_the_lms_cache(lm, shape)


def test_cache_kv_shape_of_multi_query_falcon(lms):
    """Falcon names its K/V heads in fields of its own (multi_query): the cache holds one
    head, and the cache is what the slots must match."""
    lm = lms("falcon-mqa")
    shape = cache_kv_shape(lm)
    assert shape.num_kv_heads == 1
    _assert_matches_the_lms_cache(lm, shape)


@pytest.mark.parametrize("name", DECODER_IDS)
def test_cache_kv_shape_agrees_with_the_config_of_plain_families(lms, name):
    lm = lms(name)
    assert cache_kv_shape(lm) == kv_shape(lm.config)


def _assert_matches_the_lms_cache(lm, shape):
    """The keys the LM itself caches are (B, kv_heads, T, head_dim) in every layer."""
    with torch.no_grad():
        out = lm(input_ids=torch.tensor([[3, 4, 5]]), use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    assert len(cache.layers) == shape.num_layers
    expected = (1, shape.num_kv_heads, 3, shape.head_dim)
    for layer in cache.layers:
        assert tuple(layer.keys.shape) == expected
        assert tuple(layer.values.shape) == expected


@pytest.mark.parametrize("name", DECODER_IDS)
def test_prefix_cache_holds_the_slots(lms, name):
    lm = lms(name)
    s = kv_shape(lm.config)
    kv = torch.randn(s.num_layers, 2, 3, s.num_kv_heads, 5, s.head_dim)
    cache = prefix_cache(kv, lm.config)
    assert cache.get_seq_length() == 5
    for i, layer in enumerate(cache.layers):
        torch.testing.assert_close(layer.keys, kv[i, 0])
        torch.testing.assert_close(layer.values, kv[i, 1])


def test_kv_shape_defaults_and_errors():
    cfg = types.SimpleNamespace(hidden_size=48, num_attention_heads=6, num_hidden_layers=3)
    s = kv_shape(cfg)  # no kv heads, no head_dim: multi-head attention, hidden / heads
    assert (s.num_layers, s.num_kv_heads, s.head_dim, s.hidden_size) == (3, 6, 8, 48)
    cfg.head_dim = None
    cfg.num_key_value_heads = None
    assert kv_shape(cfg).head_dim == 8 and kv_shape(cfg).num_kv_heads == 6
    with pytest.raises(ConfigError, match="attention geometry"):
        kv_shape(types.SimpleNamespace(hidden_size=8, num_hidden_layers=1))


def test_prefix_attention_mask():
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    out = prefix_attention_mask(mask, 2)
    assert out.tolist() == [[1, 1, 1, 1, 0], [1, 1, 0, 1, 1]]
    assert out.dtype == mask.dtype


def test_position_ids_count_real_tokens_from_zero():
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1]])
    assert position_ids(right)[:, :3].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert position_ids(right)[1].tolist() == [0, 1, 2, 3, 4]
    assert position_ids(left)[0, 2:].tolist() == [0, 1, 2]
    assert (position_ids(left) >= 0).all()
