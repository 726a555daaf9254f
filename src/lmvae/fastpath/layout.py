"""Where each real token of a padded batch sits, and the training attention over that layout."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lmvae.fastpath.linear import padded_rows


@dataclass
class TokenLayout:
    """Real tokens of a right-padded (B, T) batch as one flat list, and the attention mask.

    ``index`` holds the flat positions b * T + t of the ``count`` real tokens, then repeats the
    first one up to :func:`padded_rows` rows, so the packed matmuls never copy
    their input to pad it: position-wise layers keep rows apart, and attention and the output
    read the first ``count`` rows only.  ``mask`` (B, 1, T, S + T) is additive: query t sees the
    S injected slots (with ``causal_slots``, per-position injection: slots 0..t only) and the
    real tokens 0..t of its own sentence.
    """

    batch: int
    length: int
    count: int
    index: Tensor
    rows: Tensor  # (rows,) sentence of each flat row
    positions: Tensor  # (rows,) position ids counted from 0 per sentence
    mask: Tensor
    columns: Tensor  # (rows,) position of each flat row in its padded sentence

    @classmethod
    def from_mask(
        cls,
        attention_mask: Tensor,
        num_slots: int,
        dtype: torch.dtype,
        causal_slots: bool = False,
    ) -> TokenLayout:
        batch, length = attention_mask.shape
        real = attention_mask.bool()
        index = real.reshape(-1).nonzero().squeeze(1)
        count = index.shape[0]
        index = torch.cat([index, index[:1].expand(padded_rows(count) - count)])
        padded_positions = real.long().cumsum(1) - 1  # (B, T)
        positions = padded_positions.reshape(-1)[index]
        causal = torch.ones(length, length, dtype=torch.bool, device=real.device).tril()
        seen = causal[None] & real[:, None, :]  # (B, T, T)
        if causal_slots:  # query at position p sees slots 0..p
            slot_ids = torch.arange(num_slots, device=real.device)
            slots = slot_ids[None, None, :] <= padded_positions[:, :, None]
        else:
            slots = torch.ones(batch, length, num_slots, dtype=torch.bool, device=real.device)
        allowed = torch.cat([slots, seen], dim=-1)[:, None]
        mask = torch.zeros(allowed.shape, dtype=dtype, device=real.device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return cls(batch, length, count, index, index // length, positions, mask, index % length)

    def to_padded(self, flat: Tensor) -> Tensor:
        """(rows, ...) -> (B, T, ...), zeros at padding."""
        out = flat.new_zeros(self.batch * self.length, *flat.shape[1:])
        real = flat[: self.count]
        out = out.index_copy(0, self.index[: self.count], real)
        return out.view(self.batch, self.length, *flat.shape[1:])

    def to_flat(self, padded: Tensor) -> Tensor:
        """(B, T, ...) -> (rows, ...)."""
        return padded.reshape(self.batch * self.length, *padded.shape[2:]).index_select(
            0, self.index
        )


def padded_attention(
    qkv: Tensor,
    slot_keys: Tensor,
    slot_values: Tensor,
    layout: TokenLayout,
    heads: int,
    kv_heads: int,
    dim: int,
    scale: float,
    softcap: float | None = None,
) -> Tensor:
    """Flat q / k / v (rows, (heads + 2 kv_heads) * dim) of a batch's tokens, side by side, over
    the injected slots (B, kv_heads, S, dim) and each sentence's own tokens -> the flat output
    (rows, heads * dim) in qkv's dtype; rows past ``layout.count`` come out zero.  Scores are
    soft-capped as in :func:`lmvae.fastpath.decoding.attend` when ``softcap``
    is given.

    Computed in fp32 (a bf16 softmax and its backward are ~4x slower on CPU at these sizes), as
    one autograd node with its backward written out: autograd's own graph of it had ~25 nodes
    a layer (views, transposes, concatenations, gathers), most of its cost at these sizes.
    """
    return _PaddedAttention.apply(
        qkv, slot_keys, slot_values, layout, heads, kv_heads, dim, scale, softcap or None
    )


class _PaddedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, slot_keys, slot_values, layout, heads, kv_heads, dim, scale, softcap):
        batch, length, count = layout.batch, layout.length, layout.count
        group = heads // kv_heads
        padded = layout.to_padded(qkv.float())  # (B, T, ...): one copy for the three
        q, k, v = padded.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
        # Query heads grouped by the key head they read: (B * kv_heads, group * T, dim).
        q = q.view(batch, length, kv_heads, group, dim).permute(0, 2, 3, 1, 4)
        q = q.reshape(batch * kv_heads, group * length, dim)
        k = k.view(batch, length, kv_heads, dim).transpose(1, 2)
        v = v.view(batch, length, kv_heads, dim).transpose(1, 2)
        keys = torch.cat([slot_keys.float(), k], dim=2).view(batch * kv_heads, -1, dim)
        values = torch.cat([slot_values.float(), v], dim=2).view(batch * kv_heads, -1, dim)
        scores = torch.bmm(q, keys.transpose(1, 2)).mul_(scale)
        capped = None
        if softcap:
            capped = scores.div_(softcap).tanh_()  # kept for the backward: 1 - tanh^2
            scores = capped * softcap
        width = scores.shape[-1]
        scores.view(batch, kv_heads, group, length, width).add_(layout.mask[:, :, None])
        probs = torch.softmax(scores, dim=-1)
        out = torch.bmm(probs, values).view(batch, kv_heads, group, length, dim)
        real = layout.rows[:count], layout.columns[:count]
        flat = qkv.new_zeros(qkv.shape[0], heads * dim)
        flat[:count] = out.permute(0, 3, 1, 2, 4)[real].reshape(count, heads * dim)
        ctx.save_for_backward(q, keys, values, probs, capped)
        ctx.layout, ctx.shape = layout, (heads, kv_heads, dim, scale)
        ctx.slot_dtypes = slot_keys.dtype, slot_values.dtype
        return flat

    @staticmethod
    def backward(ctx, grad):
        q, keys, values, probs, capped = ctx.saved_tensors
        layout = ctx.layout
        heads, kv_heads, dim, scale = ctx.shape
        batch, length, count = layout.batch, layout.length, layout.count
        group = heads // kv_heads
        real = layout.rows[:count], layout.columns[:count]
        # The output's gradient back in the grouped layout, zeros at padding.
        g = grad.new_zeros(batch, kv_heads, group, length, dim, dtype=torch.float32)
        g.permute(0, 3, 1, 2, 4)[real] = grad[:count].float().view(count, kv_heads, group, dim)
        g = g.view(batch * kv_heads, group * length, dim)
        d_probs = torch.bmm(g, values.transpose(1, 2))
        d_values = torch.bmm(probs.transpose(1, 2), g)
        d_scores = torch._softmax_backward_data(d_probs, probs, -1, torch.float32)
        if capped is not None:  # d(cap tanh(s / cap))/ds = 1 - tanh^2
            d_scores.mul_(1 - capped.square())
        d_scores.mul_(scale)
        d_q = torch.bmm(d_scores, keys)
        d_keys = torch.bmm(d_scores.transpose(1, 2), q)
        d_keys = d_keys.view(batch, kv_heads, -1, dim)
        d_values = d_values.view(batch, kv_heads, -1, dim)
        slots = d_keys.shape[2] - length
        d_qkv = grad.new_zeros(grad.shape[0], (heads + 2 * kv_heads) * dim)
        qs, ks = heads * dim, kv_heads * dim
        d_q = d_q.view(batch, kv_heads, group, length, dim).permute(0, 3, 1, 2, 4)[real]
        d_qkv[:count, :qs] = d_q.reshape(count, qs)
        d_k = d_keys[:, :, slots:].permute(0, 2, 1, 3)[real]
        d_qkv[:count, qs : qs + ks] = d_k.reshape(count, ks)
        d_v = d_values[:, :, slots:].permute(0, 2, 1, 3)[real]
        d_qkv[:count, qs + ks :] = d_v.reshape(count, ks)
        key_dtype, value_dtype = ctx.slot_dtypes
        d_slot_keys = d_keys[:, :, :slots].to(key_dtype)
        d_slot_values = d_values[:, :, :slots].to(value_dtype)
        return d_qkv, d_slot_keys, d_slot_values, None, None, None, None, None, None
