"""A lean forward of a frozen decoder on CPU: token-flat, pre-packed weights, few ops.

The transformers modules run a general forward: masks and cache objects built per call,
attention dispatch, padding positions carried through every layer.  On CPU, for the small
models this library trains against, that overhead is most of a step.  This module runs the same
arithmetic from the same (frozen) weights for the families it knows -- GPT-2, the Llama /
Mistral / Qwen2 layout, Qwen3 (query / key head norms), Gemma 1, 2 and 3, Phi and Phi-3 -- with

* padding never entering the position-wise layers: a batch's real tokens are one (N, H)
  matrix, and only attention sees them per sentence;
* bf16 weights packed once for oneDNN (``torch.ops.mkldnn``), in both directions, so the input
  gradient of a frozen matmul is one packed matmul too (no weight gradients are ever formed);
* a growing per-layer K/V buffer for decoding instead of a cache object.

:func:`lean_trunk` says whether a decoder qualifies; anything else (another architecture,
weights that train, a GPU) runs through transformers.  Each family is
tested against the transformers forward, values and gradients.
"""

from lmvae.fastpath.decoding import SlotCache, attend, lean_step
from lmvae.fastpath.families import (
    Gemma2Trunk,
    Gemma3Trunk,
    GemmaTrunk,
    GPT2Trunk,
    LeanTrunk,
    LlamaTrunk,
    Phi3Trunk,
    PhiTrunk,
    Qwen3Trunk,
    RotaryTrunk,
    lean_trunk,
)
from lmvae.fastpath.layout import TokenLayout, padded_attention
from lmvae.fastpath.linear import (
    ROW_MULTIPLE,
    FrozenLinear,
    gelu_mlp,
    packing_available,
    padded_rows,
)

__all__ = [
    "ROW_MULTIPLE",
    "FrozenLinear",
    "GPT2Trunk",
    "Gemma2Trunk",
    "Gemma3Trunk",
    "GemmaTrunk",
    "LeanTrunk",
    "LlamaTrunk",
    "Phi3Trunk",
    "PhiTrunk",
    "Qwen3Trunk",
    "RotaryTrunk",
    "SlotCache",
    "TokenLayout",
    "attend",
    "gelu_mlp",
    "lean_step",
    "lean_trunk",
    "padded_attention",
    "padded_rows",
    "packing_available",
]
