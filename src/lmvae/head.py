"""The decoder's output head: vocabulary logits as the LM's own head makes them, and a chunked
token cross-entropy that never keeps (tokens x vocabulary) logits for backward.

Families post-process the output embedding's logits (Cohere multiplies by ``logit_scale``,
Granite divides by ``logits_scaling``, Gemma 2/3 soft-cap with ``final_logit_softcapping``);
:class:`HeadQuirks` reads them from the config once, and both paths apply them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class HeadQuirks:
    """What a family's head does after the output embedding: ``cap * tanh(scale * l / cap)``."""

    scale: float = 1.0
    softcap: float | None = None

    @classmethod
    def from_config(cls, config) -> HeadQuirks:
        text = config
        if hasattr(config, "get_text_config"):
            text = config.get_text_config(decoder=True)
        scale = float(getattr(text, "logit_scale", None) or 1.0)  # Cohere: multiply
        scale /= float(getattr(text, "logits_scaling", None) or 1.0)  # Granite: divide
        return cls(scale, getattr(text, "final_logit_softcapping", None) or None)

    def apply(self, logits: Tensor) -> Tensor:
        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def head_logits(lm: nn.Module, quirks: HeadQuirks, hidden: Tensor) -> Tensor:
    """Hidden states (..., H) -> vocabulary logits (..., V), as the LM's own head does."""
    return quirks.apply(lm.get_output_embeddings()(hidden))


def head_cross_entropy(
    lm: nn.Module, quirks: HeadQuirks, hidden: Tensor, gold: Tensor
) -> tuple[Tensor, Tensor]:
    """hidden (N, H), gold (N,) -> fp32 token NLL (N,) and argmax hits (N,): chunked through a
    frozen linear head, else through the full logits (a head that trains, or an unusual one)."""
    head = lm.get_output_embeddings()
    frozen = type(head) is nn.Linear and not any(p.requires_grad for p in head.parameters())
    if frozen:
        # A decoder spread over devices (device_map) may hold its head apart from its last
        # block; the head's module hooks are bypassed here, so the rows go to its weight.
        device = hidden.device
        nll, hits = token_cross_entropy(
            hidden.to(head.weight.device),
            head.weight,
            gold.to(head.weight.device),
            head.bias,
            quirks.scale,
            quirks.softcap,
        )
        return nll.to(device), hits.to(device)
    logits = head_logits(lm, quirks, hidden).float()
    return F.cross_entropy(logits, gold, reduction="none"), logits.argmax(-1) == gold


#: Elements of one chunk of fp32 logits in :func:`token_cross_entropy` (8 MiB).
CE_CHUNK_ELEMENTS = 2**21
#: Row counts of low-precision output-layer matmuls are padded to a multiple of this.
CE_ROW_MULTIPLE = 32


def _pad_rows(rows: Tensor, weight: Tensor, multiple: int = CE_ROW_MULTIPLE) -> Tensor:
    """Zero rows appended up to a multiple of ``multiple`` for low-precision weights.

    Their matmuls run on oneDNN, which keeps a compiled kernel (~0.7 MB) per distinct shape for
    the life of the process; a token count that changes every batch would pile them up.
    """
    extra = -rows.shape[0] % multiple
    if weight.dtype == torch.float32 or extra == 0:
        return rows
    return F.pad(rows, (0, 0, 0, extra))


class _TokenCrossEntropy(torch.autograd.Function):
    """Cross-entropy of an output layer, chunk by chunk; the gradient is formed in the forward.

    For each chunk of rows the logits are made in the weights' dtype and turned into fp32
    log-probabilities; when a gradient is needed, dnll/dlogits = softmax - onehot goes back
    through the soft cap, the scale and W at once, so only (N, H) is kept for backward, never
    (N, V) logits or probabilities.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, gold, scale, cap, chunk, need_grad):
        nll = torch.empty(hidden.shape[0], device=hidden.device)
        hits = torch.empty(hidden.shape[0], device=hidden.device, dtype=torch.bool)
        grad = torch.empty_like(hidden) if need_grad else None
        for start in range(0, hidden.shape[0], chunk):
            rows = slice(start, start + chunk)
            target = gold[rows, None]
            n = target.shape[0]
            logits = F.linear(_pad_rows(hidden[rows], weight), weight, bias)[:n].float()  # (n, V)
            if scale != 1.0:
                logits = logits.mul_(scale)
            if cap:
                logits = logits.div_(cap).tanh_().mul_(cap)
            gold_logit = logits.gather(-1, target)  # (n, 1)
            top = logits.amax(-1, keepdim=True)
            hits[rows] = (gold_logit >= top).squeeze(-1)  # the target has the highest logit
            # d(cap tanh(x / cap))/dx = 1 - (logit / cap)^2, taken before the buffer is reused.
            slope = (logits / cap).square_().neg_().add_(1.0) if need_grad and cap else None
            probs = logits.sub_(top).exp_()  # unnormalised softmax, in the logits' buffer
            total = probs.sum(-1, keepdim=True)
            nll[rows] = (total.log() + top - gold_logit).squeeze(-1)
            if need_grad:
                dlogits = probs.div_(total)
                dlogits.scatter_add_(-1, target, torch.full_like(target, -1.0, dtype=torch.float))
                if slope is not None:
                    dlogits.mul_(slope)
                if scale != 1.0:
                    dlogits.mul_(scale)
                grad[rows] = (_pad_rows(dlogits.to(weight.dtype), weight) @ weight)[:n]
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(hits)
        return nll, hits

    @staticmethod
    def backward(ctx, grad_nll, _grad_hits):
        (grad,) = ctx.saved_tensors
        grad_hidden = grad * grad_nll[:, None].to(grad.dtype)
        return grad_hidden, None, None, None, None, None, None, None


def token_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    gold: Tensor,
    bias: Tensor | None = None,
    scale: float = 1.0,
    cap: float | None = None,
    chunk_elements: int = CE_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """Per-token cross-entropy (N,) in fp32 and argmax hits (N,) of a frozen output layer.

    hidden (N, H) are the states of the target positions only, weight (V, H) and bias (V,) the
    output layer, gold (N,) the targets; logits are ``scale * (h W^T + b)``, soft-capped as
    ``cap * tanh(logits / cap)`` when ``cap`` is set.  Memory stays O(chunk x V) whatever N.
    Differentiable in ``hidden`` only.
    """
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError("token_cross_entropy differentiates the hidden states only")
    chunk = max(
        CE_ROW_MULTIPLE, chunk_elements // weight.shape[0] // CE_ROW_MULTIPLE * CE_ROW_MULTIPLE
    )
    need_grad = torch.is_grad_enabled() and hidden.requires_grad
    return _TokenCrossEntropy.apply(
        hidden, weight, bias, gold, float(scale), cap or None, chunk, need_grad
    )
