"""The prior p(z): a standard Gaussian, or a learned Gaussian per category (a mixture prior).

With a categorical sentence label c (a template family, a topic ...), the mixture prior has one
diagonal Gaussian component per category, p(z | c) = N(mu_c, diag exp(logvar_c)), and the KL of
the ELBO is taken to the component of the sentence's own category, in closed form.  Sampling
from a chosen component then generates sentences of that category (a categorical semantic
prior, as in Dilokthanakul et al., 2016 and the "Gaussian mixture" CVAEs of Shen et al., 2017).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lmvae.config import PriorConfig
from lmvae.errors import ConfigError
from lmvae.objective import gaussian_kl


def gaussian_kl_to(mu: Tensor, logvar: Tensor, prior_mu: Tensor, prior_logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(prior_mu, exp(prior_logvar))) per dimension, in nats.

    All (B, D) (or broadcastable); returns (B, D).
    """
    return 0.5 * (
        prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) / prior_logvar.exp() - 1.0
    )


class GaussianPrior(nn.Module):
    """N(0, I); no parameters."""

    kind = "gaussian"
    categories: tuple[str, ...] = ()

    def __init__(self, latent_size: int):
        super().__init__()
        self.latent_size = latent_size

    def category_ids(self, categories: list[str]) -> Tensor:
        raise ConfigError("this model has a Gaussian prior: it takes no category")

    def kl(self, mu: Tensor, logvar: Tensor, category: Tensor | None = None) -> Tensor:
        """KL(q || p) per dimension (B, D); a category is ignored."""
        return gaussian_kl(mu, logvar)

    def sample(
        self, n: int, category: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """(n, D) draws from N(0, I) (on the CPU, where seeded draws are reproducible)."""
        return torch.randn(n, self.latent_size, generator=generator)


class MixturePrior(nn.Module):
    """One learned diagonal Gaussian per category: p(z | c) = N(mu_c, diag exp(logvar_c)).

    Without a category, sampling picks a component uniformly.
    """

    kind = "mixture"

    def __init__(self, latent_size: int, config: PriorConfig):
        super().__init__()
        self.latent_size = latent_size
        self.categories = list(config.categories)
        # Seeded by the model's construction; random means start the components apart so that
        # categories are separable in z from the first step.
        self.means = nn.Parameter(
            torch.randn(len(self.categories), latent_size) * config.init_scale
        )
        self.logvars = nn.Parameter(torch.zeros(len(self.categories), latent_size))

    def category_ids(self, categories: list[str]) -> Tensor:
        """Category names -> component indices (N,), naming any unknown category."""
        index = {c: i for i, c in enumerate(self.categories)}
        unknown = sorted({c for c in categories if c not in index})
        if unknown:
            raise ConfigError(
                f"category {unknown[0]!r} is not in the prior (categories: "
                f"{', '.join(self.categories)})"
            )
        return torch.tensor([index[c] for c in categories], dtype=torch.long)

    def kl(self, mu: Tensor, logvar: Tensor, category: Tensor | None = None) -> Tensor:
        """KL(q(z|x) || p(z | c)) per dimension (B, D), c being each sentence's category (B,)."""
        if category is None:
            raise ConfigError(
                "a mixture prior needs the category of every sentence (give categories=...)"
            )
        category = category.to(self.means.device)
        return gaussian_kl_to(mu, logvar, self.means[category], self.logvars[category])

    def sample(
        self, n: int, category: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """(n, D) draws from the component of each category (n,), or of uniformly drawn ones."""
        if category is None:
            category = torch.randint(len(self.categories), (n,), generator=generator)
        eps = torch.randn(n, self.latent_size, generator=generator)
        means = self.means.detach().cpu().float()[category]
        sigma = torch.exp(0.5 * self.logvars.detach().cpu().float()[category])
        return means + sigma * eps


def build_prior(config: PriorConfig, latent_size: int) -> nn.Module:
    """The prior a config names."""
    if config.kind == "mixture":
        return MixturePrior(latent_size, config)
    return GaussianPrior(latent_size)
