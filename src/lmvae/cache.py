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
    as a cache holding the prefix.

    With ``config=None`` every layer is a plain full-attention layer (no sliding window)."""
    try:
        cache = DynamicCache(config=config) if config is not None else DynamicCache()
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


def causal_slot_mask(
    mask: Tensor, positions: Tensor, num_slots: int, attn_implementation: str | None, dtype
) -> Tensor:
    """The 4-D mask of per-position injection: query t attends to slots 0..t (by position id)
    and, causally, to the real tokens up to itself.

    mask (B, slots + K) is the 2-D mask of :func:`prefix_attention_mask` over slots and the K
    tokens seen so far; positions (B, Q) are the position ids of the Q newest tokens (the
    queries).  Returns (B, 1, Q, slots + K): boolean (True = attend), or additive float for the
    eager attention implementation, which adds its mask to the scores.  transformers passes a
    4-D mask through unchanged, so sliding windows are not applied on top of it.
    """
    if attn_implementation is not None and "flash" in attn_implementation:
        raise ConfigError(
            "per_position injection needs a custom attention mask, which flash attention does "
            "not take: load the decoder with attn_implementation='sdpa' or 'eager'"
        )
    batch, total = mask.shape
    tokens = total - num_slots
    queries = positions.shape[1]
    device = mask.device
    slots = torch.arange(num_slots, device=device)
    see_slots = slots[None, None, :] <= positions[:, :, None]  # (B, Q, slots)
    query_index = torch.arange(tokens - queries, tokens, device=device)
    causal = torch.arange(tokens, device=device)[None, :] <= query_index[:, None]  # (Q, K)
    see_tokens = causal[None] & mask[:, None, num_slots:].bool()  # (B, Q, K)
    allowed = torch.cat([see_slots, see_tokens], dim=-1)[:, None]
    if attn_implementation == "eager":
        zeros = torch.zeros(allowed.shape, dtype=dtype, device=device)
        return zeros.masked_fill(~allowed, torch.finfo(dtype).min)
    return allowed
