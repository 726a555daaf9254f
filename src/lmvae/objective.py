"""Pure functions of the training objective: Gaussian KL, free bits, the ELBO and the beta schedule.

Nothing here holds state: the trainer passes beta and the step explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    return free_bits_floor(kl_per_dim.mean(0), threshold)


def free_bits_floor(per_dim: Tensor, threshold: float) -> Tensor:
    """:func:`free_bits_kl` of per-dimension batch means (D,) already taken."""
    if threshold <= 0:
        return per_dim.sum()
    return torch.clamp(per_dim, min=threshold).sum()


def reparameterize(
    mu: Tensor,
    logvar: Tensor,
    generator: torch.Generator | None = None,
    eps: Tensor | None = None,
) -> Tensor:
    """z = mu + sigma * eps, differentiable in mu and logvar; ``eps`` (B, D) gives the standard
    normal draws, else they come from ``generator``."""
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps.to(mu.device, mu.dtype)


def sentence_noise(keys: Sequence[int], seed: int, epoch: int, width: int) -> Tensor:
    """(B, width) standard normal draws, each row from its own generator seeded by (seed,
    epoch, sentence): a sentence gets the same noise whichever process and batch position
    trains it, so a run sharded over processes samples what one process would."""
    rows = []
    for key in keys:
        gen = torch.Generator().manual_seed(hash((seed, epoch, key)) & (2**63 - 1))
        rows.append(torch.randn(width, generator=gen))
    return torch.stack(rows)


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
    sum_over_shards: Callable[[Tensor], Tensor] | None = None,
) -> LossTerms:
    """Negative ELBO with a beta weight and free bits.

    nll (B,) is the summed token cross-entropy of each sentence, num_tokens (B,) its target
    tokens.  With ``reduction="mean"`` the reconstruction is averaged per token, which changes
    the balance against the KL term; "sum" is the true ELBO.

    With the batch split over processes, ``sum_over_shards`` sums a tensor over them: the
    means are then taken over the whole batch (the per-dimension KL before the free-bits floor,
    which is not linear), so every figure is the one a single process would compute on the
    whole batch, while the gradient of ``loss`` is this shard's part of that batch's gradient
    (the parts sum to it).
    """
    # Sums and counts of this shard: sentences, target tokens, NLL, KL per dimension.
    local = torch.cat(
        [
            torch.tensor([nll.shape[0]], device=nll.device, dtype=torch.float32),
            num_tokens.sum().float()[None],
            nll.detach().sum().float()[None],
            kl_per_dim.detach().sum(0).float(),
        ]
    )
    total = sum_over_shards(local) if sum_over_shards is not None else local
    sentences, tokens = total[0], total[1]
    count = tokens.clamp_min(1) if reduction == "mean" else sentences
    reconstruction = _whole_batch(nll.sum() / count, total[2] / count)
    per_dim = _whole_batch(kl_per_dim.sum(0) / sentences, total[3:] / sentences)
    kl_floor = free_bits_floor(per_dim, free_bits)
    return LossTerms(
        loss=reconstruction + beta * kl_floor,
        reconstruction=reconstruction.detach(),
        kl=per_dim.detach().sum(),
        beta=beta,
    )


def _whole_batch(shard_part: Tensor, whole: Tensor) -> Tensor:
    """The whole batch's value with the gradient of this shard's part of it."""
    return shard_part + (whole.to(shard_part.dtype) - shard_part).detach()


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
