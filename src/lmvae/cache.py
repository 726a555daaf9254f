"""K/V tensors -> the transformers cache object the decoder attends to, plus its masks.

Every architecture or version quirk of prefix injection lives here, each with a test.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import DynamicCache

try:  # transformers >= 4.56: a cache is a list of typed layers
    from transformers.cache_utils import DynamicLayer
except ImportError:
    DynamicLayer = None

from lmvae.errors import ConfigError
from lmvae.injection import KVShape


def kv_shape(config) -> KVShape:
    """Read a decoder's K/V geometry from its config (GQA and explicit head_dim aware).

    Raises ConfigError for attention whose cache is not one key and one value per head of one
    width in every layer: the slots could not be written into it."""
    config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    try:
        hidden = int(config.hidden_size)
        heads = int(config.num_attention_heads)
        layers = int(config.num_hidden_layers)
    except AttributeError as e:
        raise ConfigError(
            f"cannot read the decoder's attention geometry from its config: {e}"
        ) from None
    # Families that name their K/V head count otherwise are read from their cache instead
    # (cache_kv_shape); the config's figure is the plain multi-head default.
    kv_heads = _field(config, "num_key_value_heads") or heads
    head_dim = _field(config, "head_dim") or hidden // heads
    # Multi-head latent attention caches one compressed latent and one shared rotary key per
    # token; the heads' keys and values only exist inside the attention.
    latent = _field(config, "kv_lora_rank")
    if latent:
        raise ConfigError(
            f"the decoder caches a compressed K/V latent (kv_lora_rank={latent}: multi-head "
            "latent attention), not per-head keys and values, so slots cannot be injected"
        )
    value_dim = _field(config, "v_head_dim")
    if value_dim and int(value_dim) != int(head_dim):
        raise ConfigError(
            f"the decoder's value heads are {value_dim} wide and its key heads {head_dim}: "
            "slot injection needs keys and values of one width"
        )
    _check_cache_layers(config)
    return KVShape(layers, int(kv_heads), int(head_dim), hidden)


def _field(config, name: str):
    """A config field or None; a field that differs per layer (transformers refuses to give
    one value for it) is a ConfigError, as one K/V geometry must hold in every layer."""
    try:
        return getattr(config, name, None)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            f"the decoder's config sets {name} per layer ({type(e).__name__}): slot injection "
            "needs one K/V geometry in every layer"
        ) from None


def _check_cache_layers(config) -> None:
    """ConfigError if transformers builds, for some layer, a cache that holds no keys and
    values: a state-space or linear-attention layer, or one reading another layer's K/V."""
    if DynamicLayer is None or not hasattr(config, "get_text_config"):
        return
    try:
        layers = DynamicCache(config=config).layers
    except (TypeError, KeyError):
        # 4.x takes no config (and has no such layers); a layer type unknown here registers its
        # class when its modeling module is imported, which loading the LM does.
        return
    for index, layer in enumerate(layers):
        if not isinstance(layer, DynamicLayer):
            raise ConfigError(
                f"layer {index} of the decoder caches no keys and values "
                f"({type(layer).__name__}): slot injection needs attention with a K/V cache "
                "in every layer"
            )


@torch.no_grad()
def cache_kv_shape(lm) -> KVShape:
    """The K/V geometry of a causal LM as its own cache holds it after a one-token forward:
    the one reader of it, so that a family naming its head count or width in fields of its
    own still gets slots of the right shape.  The config is checked first (:func:`kv_shape`:
    latent attention, per-layer geometry, cache layers without K/V are refused by name).

    Raises ConfigError unless every layer caches keys and values (1, kv_heads, 1, head_dim) of
    one shape: layers that cache a recurrent state (state-space and linear-attention hybrids)
    or a layout of their own cannot take slots."""
    config_shape = kv_shape(lm.config)
    device = lm.get_input_embeddings().weight.device
    one = torch.ones(1, 1, dtype=torch.long, device=device)  # token id 1, a real one
    out = lm(input_ids=one, attention_mask=one, use_cache=True)
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    layers = getattr(cache, "layers", None)
    if layers is None or len(layers) < config_shape.num_layers:
        raise ConfigError(
            f"the decoder returns no per-layer key/value cache ({type(cache).__name__}): slot "
            "injection needs attention with a K/V cache in every layer"
        )
    shapes = set()
    for index, layer in enumerate(layers[: config_shape.num_layers]):
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if not (isinstance(keys, Tensor) and isinstance(values, Tensor)):
            raise ConfigError(
                f"layer {index} of the decoder caches no keys and values "
                f"({type(layer).__name__}: a recurrent or linear-attention layer): slot "
                "injection needs attention with a K/V cache in every layer"
            )
        if keys.dim() != 4 or keys.shape != values.shape or keys.shape[2] != 1:
            raise ConfigError(
                f"layer {index} of the decoder caches keys {tuple(keys.shape)} and values "
                f"{tuple(values.shape)} per token: slot injection needs plain per-head keys "
                "and values (1, kv_heads, 1, head_dim) of one shape"
            )
        shapes.add((keys.shape[1], keys.shape[3]))
    if len(shapes) != 1:
        raise ConfigError(
            f"the decoder's layers cache keys of different shapes {sorted(shapes)}: slot "
            "injection needs one K/V geometry in every layer"
        )
    ((kv_heads, head_dim),) = shapes
    return KVShape(config_shape.num_layers, int(kv_heads), int(head_dim), config_shape.hidden_size)


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


def kv_statistics(cache: DynamicCache, real: Tensor, num_layers: int) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation (layers, 2, kv_heads, head_dim) of the keys and values a
    filled cache holds at the positions ``real`` (B, T) marks, over its first ``num_layers``."""
    means, stds = [], []
    for layer in cache.layers[:num_layers]:
        pair = []
        for states in (layer.keys, layer.values):  # (B, kv_heads, T, head_dim)
            pair.append(states.transpose(1, 2)[real[:, : states.shape[2]]].float())
        means.append(torch.stack([p.mean(0) for p in pair]))
        stds.append(torch.stack([p.std(0) for p in pair]))
    return torch.stack(means), torch.stack(stds)
