"""lmvae.probes.usage: KL, active units and the Optimus mutual-information estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmvae.errors import ConfigError
from lmvae.probes.usage import latent_usage, mutual_information


def test_mi_is_zero_when_every_sentence_has_the_same_posterior():
    n, d = 4000, 4
    mu = torch.full((n, d), 0.3)
    logvar = torch.full((n, d), -0.5)
    # q(z) == q(z|x) for every x, so the estimate is -H(q) - mean(log q(z_i)): zero in
    # expectation, with sampling std sqrt(d / 2 / n) = 0.022 here.
    assert mutual_information(mu, logvar) == pytest.approx(0.0, abs=0.08)


def test_mi_reaches_log_n_for_sharp_distinct_posteriors():
    n, d = 64, 3
    mu = torch.randn(n, d, generator=torch.Generator().manual_seed(0)) * 50
    logvar = torch.full((n, d), -12.0)
    # Each sample is explained by its own posterior only: log q(z_i) = log q(z_i|x_i) - log n.
    assert mutual_information(mu, logvar) == pytest.approx(math.log(n), abs=0.05)


def test_mi_two_point_hand_computation():
    # Two 1-D posteriors N(-a, 1) and N(+a, 1) with a large: the estimate is log 2 for each
    # sample minus the entropy term's sampling noise, which the seed fixes; compare it with an
    # independent numpy evaluation of the same formula at the same z.
    mu = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    logvar = torch.zeros(2, 1, dtype=torch.float64)
    z = mu + torch.randn(mu.shape, generator=torch.Generator().manual_seed(0), dtype=mu.dtype)
    zs, ms = z.numpy()[:, 0], mu.numpy()[:, 0]
    log_q = -0.5 * (zs[:, None] - ms[None]) ** 2 - 0.5 * math.log(2 * math.pi)
    log_qz = np.log(np.exp(log_q).mean(1))
    expected = (-0.5 * math.log(2 * math.pi) - 0.5) - log_qz.mean()
    assert mutual_information(mu, logvar, seed=0) == pytest.approx(expected, abs=1e-9)


def test_mi_chunking_does_not_change_the_estimate():
    mu = torch.randn(50, 5, generator=torch.Generator().manual_seed(1))
    logvar = torch.randn(50, 5, generator=torch.Generator().manual_seed(2)) * 0.3 - 1
    whole = mutual_information(mu, logvar, chunk_size=512)
    assert mutual_information(mu, logvar, chunk_size=7) == pytest.approx(whole, abs=1e-10)


def test_latent_usage_kl_matches_closed_form_and_counts_active_units():
    mu = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0, math.log(4.0)]] * 3)
    out = latent_usage(mu, logvar)
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1 - log s^2) / 2 per dimension.
    assert out["kl_per_dim"] == pytest.approx([0.0, 0.5, (4 - 1 - math.log(4)) / 2])
    assert out["kl"] == pytest.approx(sum(out["kl_per_dim"]))
    assert out["active_units"] == 1  # only dim 1's mean varies across sentences
    assert out["latent_size"] == 3
    assert out["mi_upper_bound"] == pytest.approx(math.log(3))


@pytest.mark.parametrize(
    "mu, logvar",
    [(torch.zeros(5, 2), torch.zeros(5, 3)), (torch.zeros(1, 2), torch.zeros(1, 2))],
)
def test_bad_shapes_are_clear_errors(mu, logvar):
    with pytest.raises(ConfigError):
        latent_usage(mu, logvar)
