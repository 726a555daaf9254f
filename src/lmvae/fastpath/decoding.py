"""Decoding on the lean forward: per-layer K/V buffers and one step for a batch of tokens."""

from __future__ import annotations

import torch
from torch import Tensor

from lmvae.fastpath.families import LeanTrunk


def attend(
    q: Tensor,
    keys: Tensor,
    values: Tensor,
    scale: float,
    softcap: float | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """q (B, Hq, T, D) over keys / values (B, Hkv, K, D), grouped-query aware -> (B, Hq, T, D);
    scores soft-capped as ``softcap * tanh(scores / softcap)`` when given (Gemma 2), then
    ``bias`` (K,) added (decoding sees every cached position, but with per-position injection
    only the slots up to its own)."""
    batch, heads, length, dim = q.shape
    kv_heads = keys.shape[1]
    q = q.reshape(batch, kv_heads, heads // kv_heads * length, dim)
    scores = torch.matmul(q, keys.transpose(-1, -2)) * scale
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    if bias is not None:
        scores = scores + bias
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, values).view(batch, heads, length, dim)


class SlotCache:
    """Per-layer K/V buffers (layers, 2, B, kv_heads, capacity, D) holding the injected slots,
    then each new token; fp32, because attention over one query is several times faster in
    fp32 than in bf16 on CPU (and the buffers are small)."""

    def __init__(
        self,
        trunk: LeanTrunk,
        prefix: list[tuple[Tensor, Tensor]],
        capacity: int,
        causal_slots: bool = False,
    ):
        self.trunk = trunk
        keys = prefix[0][0]
        batch, heads, slots, dim = keys.shape
        self.length = self.slots = slots
        self.causal_slots = causal_slots
        shape = (len(prefix), 2, batch, heads, max(capacity, slots + 1), dim)
        self.buffer = keys.new_empty(shape, dtype=torch.float32)
        for layer, (k, v) in enumerate(prefix):
            self.buffer[layer, 0, :, :, :slots] = k
            self.buffer[layer, 1, :, :, :slots] = v

    def append(self, layer: int, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Write the new token's keys and values (B, 2 * kv_heads * D, side by side) at the
        end; return the filled views (B, kv_heads, n, D)."""
        n = self.length + 1
        window = self.trunk.window
        if window is not None and n > window:
            raise ValueError(
                f"the lean forward attends to at most the decoder's window of {window} positions "
                "(slots included); set decoder.fast_path = False for longer outputs"
            )
        if self.length >= self.buffer.shape[4]:
            self.buffer = torch.cat([self.buffer, torch.empty_like(self.buffer)], dim=4)
        _, _, batch, heads, _, dim = self.buffer.shape
        self.buffer[layer, :, :, :, self.length] = kv.view(batch, 2, heads, dim).transpose(0, 1)
        return self.buffer[layer, 0, :, :, :n], self.buffer[layer, 1, :, :, :n]

    def advance(self) -> None:
        self.length += 1

    def get_seq_length(self) -> int:
        """Positions held (slots and tokens), as a transformers cache reports it."""
        return self.length

    def reorder_cache(self, index: Tensor) -> None:
        """Row i becomes a copy of row index[i] (beam search)."""
        self.buffer = self.buffer.index_select(2, index)

    def slot_bias(self, position: int) -> Tensor | None:
        """With per-position injection, the additive (n,) scores bias that hides the slots past
        ``position`` from the token there (n: positions held after this step's write)."""
        if not self.causal_slots or position + 1 >= self.slots:
            return None
        bias = self.buffer.new_zeros(self.length + 1)
        bias[position + 1 : self.slots] = torch.finfo(bias.dtype).min
        return bias


def lean_step(cache: SlotCache, ids: Tensor, position: int, offset: Tensor | None) -> Tensor:
    """One decoding step for ids (B,) at ``position``: last hidden states (B, H)."""
    trunk = cache.trunk
    positions = torch.full_like(ids, position)
    x = trunk.embed(ids, positions)
    if offset is not None:
        x = x + offset.to(x.dtype)
    batch, heads = ids.shape[0], trunk.num_heads
    bias = cache.slot_bias(position)
    for layer in range(trunk.num_layers):
        qkv = trunk.qkv(layer, x, positions)
        q = qkv[:, : heads * trunk.head_dim].view(batch, heads, 1, trunk.head_dim)
        keys, values = cache.append(layer, qkv[:, heads * trunk.head_dim :])
        attended = attend(q.float(), keys, values, trunk.scale(layer), trunk.softcap, bias)
        x = trunk.finish(layer, x, attended.reshape(batch, -1).to(x.dtype))
    cache.advance()
    return trunk.final_norm(x)
