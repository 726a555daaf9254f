"""Padding-free training batches: the soft prompts and sentences of a batch end to end in one
row.  Each sentence's position ids restart at 0, which transformers reads as its packed-sequence
format and turns into a block-diagonal causal mask for every attention implementation, so no
sentence attends to another and no position is spent on padding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lmvae.errors import ConfigError


def packed_forward(
    base: nn.Module, prompt: Tensor, tokens: Tensor, attention_mask: Tensor
) -> Tensor:
    """The trunk's last hidden states (B, T, H) of right-padded sentences ``tokens`` (B, T, H)
    after their prompts (B, P, H), computed on one packed row; zero at padding."""
    batch, slots = prompt.shape[:2]
    keep = torch.cat([attention_mask.new_ones(batch, slots), attention_mask], 1).bool()
    positions = keep.long().cumsum(1) - 1  # 0.. per sentence, prompt first
    out = base(
        inputs_embeds=torch.cat([prompt, tokens], 1)[keep][None],
        position_ids=positions[keep][None],
        attention_mask=None,
        use_cache=False,
    ).last_hidden_state[0]
    hidden = out.new_zeros(*keep.shape, out.shape[-1]).masked_scatter(keep[..., None], out)
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
