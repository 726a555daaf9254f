"""How much of the latent space the model uses: KL, active units and mutual information.

A VAE can reconstruct well while ignoring z (posterior collapse) or use only a few dimensions.
These figures tell which: the KL to the prior per sentence and per dimension, the number of
*active units* (dimensions whose posterior mean varies across sentences, Burda et al., 2016)
and the mutual information I(x; z) between sentences and latents under the encoder's joint
distribution, estimated as in Optimus (Li et al., 2020, after He et al., 2019).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..metrics import active_units

__all__ = ["active_units", "latent_usage", "mutual_information"]

_LOG_2PI = math.log(2 * math.pi)


def _check(mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
    mu, logvar = torch.as_tensor(mu), torch.as_tensor(logvar)
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ConfigError(
            f"mu and logvar must both be (N, D), got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    if mu.shape[0] < 2:
        raise ConfigError("latent-usage figures need at least 2 sentences")
    return mu.detach().cpu().double(), logvar.detach().cpu().double()


def mutual_information(mu: Tensor, logvar: Tensor, seed: int = 0, chunk_size: int = 512) -> float:
    """I(x; z) of the encoder's joint q(x, z) = p_data(x) q(z|x), the Optimus estimator.

    ``I = E_x[-H(q(z|x))] - E_{x, z ~ q(z|x)}[log q(z)]`` with the aggregate posterior
    ``q(z) = 1/N sum_j q(z|x_j)`` over the N given sentences, one z sample per sentence (seeded).
    The estimate lies in [0, log N] up to sampling noise: about 0 when every sentence has the same
    posterior (z says nothing about x), log N when posteriors are far apart and sharp.
    """
    mu, logvar = _check(mu, logvar)
    n, d = mu.shape
    generator = torch.Generator().manual_seed(seed)
    z = mu + torch.randn(mu.shape, generator=generator, dtype=mu.dtype) * (0.5 * logvar).exp()
    neg_entropy = float((-0.5 * d * _LOG_2PI - 0.5 * (1 + logvar).sum(-1)).mean())
    inv_var = (-logvar).exp()  # (N, D)
    norm = -0.5 * (d * _LOG_2PI + logvar.sum(-1))  # (N,)
    log_qz = []
    for i in range(0, n, chunk_size):
        dev = z[i : i + chunk_size, None, :] - mu[None]  # (C, N, D)
        log_density = -0.5 * (dev.square() * inv_var[None]).sum(-1) + norm[None]  # (C, N)
        log_qz.append(torch.logsumexp(log_density, dim=1) - math.log(n))
    return neg_entropy - float(torch.cat(log_qz).mean())


def latent_usage(mu: Tensor, logvar: Tensor, threshold: float = 0.01, seed: int = 0) -> dict:
    """KL to N(0, I) (mean per sentence and per dimension), active units and mutual information.

    Returns ``{"kl", "kl_per_dim", "active_units", "latent_size", "mutual_information",
    "mi_upper_bound"}``; ``mi_upper_bound`` is log N, the most the estimator can give.
    """
    mu, logvar = _check(mu, logvar)
    kl_per_dim = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).mean(0)
    return {
        "kl": float(kl_per_dim.sum()),
        "kl_per_dim": [float(v) for v in kl_per_dim],
        "active_units": active_units(mu, threshold),
        "latent_size": int(mu.shape[1]),
        "mutual_information": mutual_information(mu, logvar, seed),
        "mi_upper_bound": float(np.log(mu.shape[0])),
    }
