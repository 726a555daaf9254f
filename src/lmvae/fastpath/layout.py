"""Where each real token of a padded batch sits, and the training attention over that layout."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    real tokens 0..t of its own sentence.  ``gather`` and ``scatter`` take rows between the flat
    list and the padded (B * T) layout attention works in, one ``index_select`` each way.
    """

    batch: int
    length: int
    count: int
    index: Tensor
    rows: Tensor  # (rows,) sentence of each flat row
    positions: Tensor  # (rows,) position ids counted from 0 per sentence
    mask: Tensor
    gather: Tensor  # (B * T,) flat row of each padded position (padding: row 0)
    scatter: Tensor  # (rows,) padded position of each flat row (the rows past count: B * T)
    query_mask: Tensor  # (B, 1, 1, T, 1) 1 at real positions, 0 at padding
    _grouped: dict = field(default_factory=dict, repr=False)

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
        real_index = index[:count]
        gather = torch.zeros(batch * length, dtype=torch.long, device=real.device)
        gather[real_index] = torch.arange(count, device=real.device)
        scatter = torch.cat(
            [real_index, real_index.new_full((index.shape[0] - count,), batch * length)]
        )
        query_mask = real.to(dtype).view(batch, 1, 1, length, 1)
        return cls(
            batch,
            length,
            count,
            index,
            index // length,
            positions,
            mask,
            gather,
            scatter,
            query_mask,
        )

    def grouped_mask(self, kv_heads: int, group: int) -> Tensor:
        """The mask expanded to the grouped scores (B * kv_heads, group * T, S + T), made once
        per layout and shared by its layers: it becomes the addend of one ``baddbmm``."""
        key = (kv_heads, group)
        if key not in self._grouped:
            width = self.mask.shape[-1]
            expanded = self.mask[:, :, None].expand(self.batch, kv_heads, group, self.length, width)
            self._grouped[key] = expanded.reshape(self.batch * kv_heads, group * self.length, width)
        return self._grouped[key]

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
    Between the flat rows and the padded layout, each direction is one gather
    (``layout.gather`` / ``layout.scatter``) and the mask and scale ride on one ``baddbmm``:
    ~30 % less time than zero-filled buffers written by index (measured in isolation).
    """
    return _PaddedAttention.apply(
        qkv, slot_keys, slot_values, layout, heads, kv_heads, dim, scale, softcap or None
    )


class _PaddedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, slot_keys, slot_values, layout, heads, kv_heads, dim, scale, softcap):
        batch, length = layout.batch, layout.length
        group = heads // kv_heads
        slots = slot_keys.shape[2]
        qs, ks = heads * dim, kv_heads * dim
        # Padded positions read row 0: masked as keys, and their outputs are never read.
        padded = qkv.index_select(0, layout.gather).view(batch, length, -1)
        f32 = torch.float32
        q = torch.empty(batch, kv_heads, group, length, dim, dtype=f32, device=qkv.device)
        q.copy_(padded[..., :qs].view(batch, length, kv_heads, group, dim).permute(0, 2, 3, 1, 4))
        q = q.view(batch * kv_heads, group * length, dim)
        keys = qkv.new_empty(batch, kv_heads, slots + length, dim, dtype=f32)
        values = torch.empty_like(keys)
        keys[:, :, :slots] = slot_keys
        keys[:, :, slots:] = (
            padded[..., qs : qs + ks].view(batch, length, kv_heads, dim).transpose(1, 2)
        )
        values[:, :, :slots] = slot_values
        values[:, :, slots:] = (
            padded[..., qs + ks :].view(batch, length, kv_heads, dim).transpose(1, 2)
        )
        keys = keys.view(batch * kv_heads, -1, dim)
        values = values.view(batch * kv_heads, -1, dim)
        mask = layout.grouped_mask(kv_heads, group)
        capped = None
        if softcap:
            scores = torch.bmm(q, keys.transpose(1, 2)).mul_(scale / softcap)
            capped = scores.tanh_()  # kept for the backward: 1 - tanh^2
            scores = torch.add(mask, capped, alpha=softcap)
        else:
            scores = torch.baddbmm(mask, q, keys.transpose(1, 2), alpha=scale)
        probs = torch.softmax(scores, dim=-1)
        out = torch.bmm(probs, values).view(batch, kv_heads, group, length, dim)
        # By padded position, one more zero row for the rows past count, then flat.
        by_position = qkv.new_empty(batch * length + 1, qs)
        by_position[-1].zero_()
        by_position[:-1].view(batch, length, kv_heads, group, dim).copy_(out.permute(0, 3, 1, 2, 4))
        flat = by_position.index_select(0, layout.scatter)
        ctx.save_for_backward(q, keys, values, probs, capped)
        ctx.layout, ctx.shape = layout, (heads, kv_heads, dim, scale, slots)
        return flat

    @staticmethod
    def backward(ctx, grad):
        q, keys, values, probs, capped = ctx.saved_tensors
        layout = ctx.layout
        heads, kv_heads, dim, scale, slots = ctx.shape
        batch, length = layout.batch, layout.length
        group = heads // kv_heads
        qs, ks = heads * dim, kv_heads * dim
        # The output's gradient in the grouped layout, zero at padded queries.
        by_position = grad.index_select(0, layout.gather).view(batch, length, kv_heads, group, dim)
        g = torch.empty(
            batch, kv_heads, group, length, dim, dtype=torch.float32, device=grad.device
        )
        g.copy_(by_position.permute(0, 2, 3, 1, 4)).mul_(layout.query_mask)
        g = g.view(batch * kv_heads, group * length, dim)
        # The first layer's tokens need no gradient (frozen embeddings): only the slots' then.
        tokens_too = ctx.needs_input_grad[0]
        width = probs.shape[-1] if tokens_too else slots
        d_probs = torch.bmm(g, values.transpose(1, 2))
        d_values = torch.bmm(probs[..., :width].transpose(1, 2), g).view(batch, kv_heads, -1, dim)
        d_scores = torch._softmax_backward_data(d_probs, probs, -1, torch.float32)
        if capped is not None:  # d(cap tanh(s / cap))/ds = 1 - tanh^2
            d_scores.mul_(1 - capped.square())
        d_scores.mul_(scale)
        d_keys = torch.bmm(d_scores[..., :width].transpose(1, 2), q).view(batch, kv_heads, -1, dim)
        if not tokens_too:
            return None, d_keys, d_values, None, None, None, None, None, None
        d_q = torch.bmm(d_scores, keys).view(batch, kv_heads, group, length, dim)
        # Gradients by padded position (zero at padding), one more zero row for the rows past
        # count, then back to the flat rows in one gather.
        d_padded = grad.new_empty(batch * length + 1, qs + 2 * ks)
        d_padded[-1].zero_()
        by_position = d_padded[:-1].view(batch, length, -1)
        by_position[..., :qs].view(batch, length, kv_heads, group, dim).copy_(
            d_q.permute(0, 3, 1, 2, 4)
        )
        by_position[..., qs : qs + ks].view(batch, length, kv_heads, dim).copy_(
            d_keys[:, :, slots:].transpose(1, 2)
        )
        by_position[..., qs + ks :].view(batch, length, kv_heads, dim).copy_(
            d_values[:, :, slots:].transpose(1, 2)
        )
        d_qkv = d_padded.index_select(0, layout.scatter)
        return (
            d_qkv,
            d_keys[:, :, :slots],
            d_values[:, :, :slots],
            None,
            None,
            None,
            None,
            None,
            None,
        )
