"""Padding-free training batches: the soft prompts and sentences of a batch end to end in rows.
Each sentence's position ids restart at 0, which transformers reads as its packed-sequence
format and turns into a block-diagonal causal mask for every attention implementation, so no
sentence attends to another and almost no position is spent on padding.  Rows hold at most
``row_tokens`` positions (or one sentence, if longer): attention over a row costs its length
squared, and a whole large batch in one row would spend more on attention than padding costs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lmvae.errors import ConfigError

#: Positions per packed row: a batch of 16 glosses after a 16-vector prompt fits in one.
ROW_TOKENS = 1024


def _rows(lengths: list[int], row_tokens: int) -> tuple[list[int], list[int]]:
    """Greedy, in batch order: each sentence's row and its first column."""
    rows, starts, row, used = [], [], 0, 0
    for n in lengths:
        if used and used + n > row_tokens:
            row, used = row + 1, 0
        rows.append(row)
        starts.append(used)
        used += n
    return rows, starts


def packed_forward(
    base: nn.Module,
    prompt: Tensor,
    tokens: Tensor,
    attention_mask: Tensor,
    row_tokens: int = ROW_TOKENS,
) -> Tensor:
    """The trunk's last hidden states (B, T, H) of right-padded sentences ``tokens`` (B, T, H)
    after their prompts (B, P, H), computed on packed rows; zero at padding."""
    batch, slots = prompt.shape[:2]
    keep = torch.cat([attention_mask.new_ones(batch, slots), attention_mask], 1).bool()
    lengths = keep.sum(1)
    rows, starts = _rows(lengths.tolist(), row_tokens)
    device = prompt.device
    positions = keep.long().cumsum(1) - 1  # 0.. per sentence, prompt first
    row = torch.tensor(rows, device=device)[:, None].expand_as(keep)[keep]
    col = (torch.tensor(starts, device=device)[:, None] + positions)[keep]
    width = int(col.max()) + 1
    embeds = prompt.new_zeros(rows[-1] + 1, width, prompt.shape[-1])
    embeds = embeds.index_put((row, col), torch.cat([prompt, tokens], 1)[keep])
    # A row's unused tail counts up from 0: a segment of its own that no sentence attends to.
    row_ids = torch.arange(width, device=device).expand(rows[-1] + 1, -1)
    used = torch.zeros(rows[-1] + 1, dtype=torch.long, device=device)
    used = used.index_add(0, torch.tensor(rows, device=device), lengths)
    position_ids = torch.where(row_ids < used[:, None], 0, row_ids - used[:, None])
    position_ids = position_ids.index_put((row, col), positions[keep])
    out = base(
        inputs_embeds=embeds, position_ids=position_ids, attention_mask=None, use_cache=False
    ).last_hidden_state
    hidden = out.new_zeros(*keep.shape, out.shape[-1]).masked_scatter(
        keep[..., None], out[row, col]
    )
    return hidden[:, slots:]


def check_packing(name: str, padded: Tensor, packed: Tensor, attention_mask: Tensor) -> None:
    """Raise unless the packed pass gave the padded pass's hidden states (B, T, H) at the real
    positions: a family whose masking ignored the packed format would let sentences read each
    other."""
    real = attention_mask.bool()
    gap = (packed[real].float() - padded[real].float()).abs().max().item()
    scale = padded[real].float().abs().max().item()
    # A decoder held in bf16 (lmvae.fsdp) rounds the two passes apart by a few of its epsilons;
    # sentences reading each other move hidden states by their own scale.
    tolerance = max(1e-3, 4 * torch.finfo(padded.dtype).eps)
    if not gap <= tolerance * max(scale, 1.0):
        raise ConfigError(
            f"packing does not work with this decoder ({name}): its attention does not keep "
            f"packed sentences apart (hidden states differ by {gap:.3g})"
        )
