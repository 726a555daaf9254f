"""Pure functions of the training objective: Gaussian KL, free bits, the ELBO and the beta schedule.

Nothing here holds state: the trainer passes beta and the step explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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
