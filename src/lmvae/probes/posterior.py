"""Posterior samples: how far does a sentence's own posterior reach?

The posterior mean decodes to the reconstruction; sentences decoded from samples z ~ q(z | x)
show what the encoder's uncertainty means in text. A sharp posterior decodes to the same
sentence every time, a wide one to paraphrases or to other sentences; the spread itself is
reported per dimension as sigma = exp(0.5 * logvar).

Only the public model API is used (``vae.posterior``, ``vae.decode``); the means and all
samples of all sentences are decoded in one batched call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["posterior_samples"]


def posterior_samples(
    vae: Any, texts: Sequence[str], samples: int = 4, seed: int = 0, **generation: Any
) -> list[dict[str, Any]]:
    """Decode each text's posterior mean and ``samples`` draws from its posterior (seeded).

    ``generation`` goes to ``vae.decode``. Returns one row per text: ``{"text",
    "reconstruction", "samples" (decoded draws), "mu", "sigma" (per dimension), "mean_sigma"}``.
    """
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
        raise ConfigError("texts must be a non-empty list of sentences")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ConfigError(f"samples must be an integer >= 0, got {samples!r}")
    mu, logvar = vae.posterior(list(texts))
    mu, sigma = mu.detach().float(), (0.5 * logvar.detach().float()).exp()
    generator = torch.Generator(device=mu.device).manual_seed(seed)
    noise = torch.randn((samples, *mu.shape), generator=generator, device=mu.device)
    z = torch.cat([mu, (mu + noise * sigma).reshape(-1, mu.shape[1])])  # (N * (1 + samples), D)
    decoded = vae.decode(z, **generation)
    n = len(texts)
    rows = []
    for i, text in enumerate(texts):
        rows.append(
            {
                "text": text,
                "reconstruction": decoded[i],
                "samples": [decoded[n + s * n + i] for s in range(samples)],
                "mu": [float(v) for v in mu[i].cpu()],
                "sigma": [float(v) for v in sigma[i].cpu()],
                "mean_sigma": float(sigma[i].mean()),
            }
        )
    return rows
