"""Pure functions of the training objective: Gaussian KL, free bits, the ELBO and beta schedules.

Nothing here holds state: the trainer passes beta and the step explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per dimension: (B, D) -> (B, D), in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def free_bits_kl(kl_per_dim: Tensor, threshold: float) -> Tensor:
    """KL to optimise with a per-dimension floor (Kingma et al., 2016, "free bits").

    kl_per_dim (B, D) is averaged over the batch per dimension; dimensions whose mean KL is below
    ``threshold`` contribute the constant threshold (no gradient), so the optimiser is not pushed
    to collapse them.  Returns a scalar: the sum over dimensions.
    """
    per_dim = kl_per_dim.mean(0)
    if threshold <= 0:
        return per_dim.sum()
    return torch.clamp(per_dim, min=threshold).sum()


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = mu + sigma * eps, differentiable in mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


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


@dataclass
class LossTerms:
    """The scalars of one training step (batch means, per sentence)."""

    loss: Tensor  # what is back-propagated
    reconstruction: Tensor  # token NLL per sentence (or per token, with reduction "mean")
    kl: Tensor  # raw KL per sentence, no floor
    beta: float


def elbo_loss(
    nll: Tensor,
    num_tokens: Tensor,
    kl_per_dim: Tensor,
    beta: float,
    free_bits: float = 0.0,
    reduction: str = "sum",
) -> LossTerms:
    """Negative ELBO with a beta weight and free bits.

    nll (B,) is the summed token cross-entropy of each sentence, num_tokens (B,) its target
    tokens.  With ``reduction="mean"`` the reconstruction is averaged per token, which changes
    the balance against the KL term; "sum" is the true ELBO.
    """
    if reduction == "mean":
        reconstruction = nll.sum() / num_tokens.sum().clamp_min(1)
    else:
        reconstruction = nll.mean()
    kl_floor = free_bits_kl(kl_per_dim, free_bits)
    return LossTerms(
        loss=reconstruction + beta * kl_floor,
        reconstruction=reconstruction.detach(),
        kl=kl_per_dim.sum(1).mean().detach(),
        beta=beta,
    )


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """Learning-rate multiplier: a linear warm-up from 0 over ``warmup_steps``, then "cosine"
    (half a cosine down to 0 at ``total_steps``), "linear" (down to 0) or "constant".  The same
    numbers as transformers' ``get_scheduler`` for these names."""
    if step < warmup_steps:
        return float(step) / float(max(1, warmup_steps))
    if schedule == "constant":
        return 1.0
    remaining = float(max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return max(0.0, float(total_steps - step) / remaining)
    progress = float(step - warmup_steps) / remaining
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def cyclical_beta(
    step: int,
    total_steps: int,
    cycles: int = 4,
    beta_max: float = 1.0,
    zero_ratio: float = 0.0,
    ramp_ratio: float = 0.5,
) -> float:
    """Cyclical annealing (Fu et al., 2019): each cycle holds beta at 0 for ``zero_ratio`` of it,
    ramps linearly to ``beta_max`` over ``ramp_ratio``, then stays at ``beta_max``."""
    if total_steps <= 0:
        return beta_max
    period = total_steps / cycles
    phase = (step % period) / period if period > 0 else 1.0
    if phase < zero_ratio:
        return 0.0
    if ramp_ratio <= 0:
        return beta_max
    return beta_max * min(1.0, (phase - zero_ratio) / ramp_ratio)


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Dimensions whose posterior mean varies across inputs: Cov_x(E[z|x]) > threshold
    (Burda et al., 2016).  mu is (N, D)."""
    if mu.shape[0] < 2:
        return 0
    return int((mu.var(0, unbiased=True) > threshold).sum())
