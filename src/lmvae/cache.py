"""K/V tensors -> the transformers cache object the decoder attends to, plus its masks.

Every architecture or version quirk of prefix injection lives here, each with a test.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import DynamicCache

from lmvae.errors import ConfigError
from lmvae.injection import KVShape


def kv_shape(config) -> KVShape:
    """Read a decoder's K/V geometry from its config (GQA and explicit head_dim aware)."""
    config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    try:
        hidden = int(config.hidden_size)
        heads = int(config.num_attention_heads)
        layers = int(config.num_hidden_layers)
    except AttributeError as e:
        raise ConfigError(
            f"cannot read the decoder's attention geometry from its config: {e}"
        ) from None
    kv_heads = getattr(config, "num_key_value_heads", None)
    if kv_heads is None and getattr(config, "model_type", "") == "falcon":
        # Falcon: grouped heads in the new architecture, one shared head with multi_query.
        if getattr(config, "new_decoder_architecture", False):
            kv_heads = config.num_kv_heads
        elif getattr(config, "multi_query", False):
            kv_heads = 1
    kv_heads = kv_heads or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return KVShape(layers, int(kv_heads), int(head_dim), hidden)


def prefix_cache(kv: Tensor | Sequence[tuple[Tensor, Tensor]], config) -> DynamicCache:
    """Wrap kv (layers, 2, B, kv_heads, slots, head_dim), or one (keys, values) pair per layer,
    as a cache holding the prefix."""
    try:
        cache = DynamicCache(config=config)
    except TypeError:  # transformers 4.x has no config argument
        cache = DynamicCache()
    for layer, (keys, values) in enumerate(kv):
        cache.update(keys, values, layer)
    return cache


def prefix_attention_mask(attention_mask: Tensor, num_slots: int) -> Tensor:
    """(B, T) mask of the real tokens -> (B, slots + T): the prefix is always attended to."""
    ones = attention_mask.new_ones(attention_mask.shape[0], num_slots)
    return torch.cat([ones, attention_mask], dim=1)


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions of the real tokens counted from 0, so the prefix does not shift absolute
    position embeddings (GPT-2) or rotary phases (Llama and kin)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
