"""Where each real token of a padded batch sits, and attention over the padded layout."""

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
    S injected slots and the real tokens 0..t of its own sentence.
    """

    batch: int
    length: int
    count: int
    index: Tensor
    rows: Tensor  # (rows,) sentence of each flat row
    positions: Tensor  # (rows,) position ids counted from 0 per sentence
    mask: Tensor

    @classmethod
    def from_mask(cls, attention_mask: Tensor, num_slots: int, dtype: torch.dtype) -> TokenLayout:
        batch, length = attention_mask.shape
        real = attention_mask.bool()
        index = real.reshape(-1).nonzero().squeeze(1)
        count = index.shape[0]
        index = torch.cat([index, index[:1].expand(padded_rows(count) - count)])
        positions = (real.long().cumsum(1) - 1).reshape(-1)[index]
        causal = torch.ones(length, length, dtype=torch.bool, device=real.device).tril()
        seen = causal[None] & real[:, None, :]  # (B, T, T)
        slots = torch.ones(batch, length, num_slots, dtype=torch.bool, device=real.device)
        allowed = torch.cat([slots, seen], dim=-1)[:, None]
        mask = torch.zeros(allowed.shape, dtype=dtype, device=real.device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return cls(batch, length, count, index, index // length, positions, mask)

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


def attend(q: Tensor, keys: Tensor, values: Tensor, scale: float, mask: Tensor | None) -> Tensor:
    """q (B, Hq, T, D) over keys / values (B, Hkv, K, D), grouped-query aware -> (B, Hq, T, D)."""
    batch, heads, length, dim = q.shape
    kv_heads = keys.shape[1]
    group = heads // kv_heads
    q = q.reshape(batch, kv_heads, group * length, dim)
    scores = torch.matmul(q, keys.transpose(-1, -2)) * scale
    if mask is not None:
        scores = (scores.view(batch, kv_heads, group, length, -1) + mask[:, :, None]).view(
            batch, kv_heads, group * length, -1
        )
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, values).view(batch, heads, length, dim)
