"""lmvae.objective: KL, free bits, the ELBO and the beta schedule, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from lmvae.objective import (
    cyclical_beta,
    elbo_loss,
    free_bits_kl,
    gaussian_kl,
    reparameterize,
)


def test_gaussian_kl_matches_torch_distributions_per_dim():
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 7, generator=gen, dtype=torch.float64) * 2
    logvar = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    ours = gaussian_kl(mu, logvar)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))
    assert ours.shape == (5, 7)
    torch.testing.assert_close(ours, ref)


def test_gaussian_kl_is_zero_at_the_prior_and_positive_elsewhere():
    assert torch.count_nonzero(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3))) == 0
    assert (gaussian_kl(torch.full((1, 3), 0.5), torch.full((1, 3), -0.3)) > 0).all()


def test_free_bits_only_dims_above_threshold_get_gradient():
    # Batch-mean KL per dim: dim 0 = 0.05 (below 0.25), dim 1 = 1.0 (above), dim 2 = 0.2 (below).
    kl = torch.tensor([[0.0, 0.5, 0.1], [0.1, 1.5, 0.3]], requires_grad=True)
    value = free_bits_kl(kl, threshold=0.25)
    assert value.item() == pytest.approx(0.25 + 1.0 + 0.25)
    value.backward()
    grad = kl.grad
    assert torch.all(grad[:, 0] == 0) and torch.all(grad[:, 2] == 0)
    torch.testing.assert_close(grad[:, 1], torch.full((2,), 0.5))  # d mean / d element = 1/B


def test_free_bits_zero_threshold_is_the_plain_batch_mean_sum():
    kl = torch.tensor([[0.0, 0.5], [0.2, 1.5]], requires_grad=True)
    value = free_bits_kl(kl, threshold=0.0)
    assert value.item() == pytest.approx((0.0 + 0.2) / 2 + (0.5 + 1.5) / 2)
    value.backward()
    torch.testing.assert_close(kl.grad, torch.full((2, 2), 0.5))


def test_elbo_sum_reduction_by_hand():
    nll = torch.tensor([6.0, 2.0])
    num_tokens = torch.tensor([3, 1])
    kl = torch.tensor([[0.1, 0.4], [0.3, 0.2]])
    terms = elbo_loss(nll, num_tokens, kl, beta=0.5, free_bits=0.0, reduction="sum")
    assert terms.reconstruction.item() == pytest.approx(4.0)  # mean over sentences of sums
    assert terms.kl.item() == pytest.approx(0.5)  # per-sentence KL summed over dims, averaged
    assert terms.loss.item() == pytest.approx(4.0 + 0.5 * 0.5)
    assert terms.beta == 0.5


def test_elbo_mean_reduction_is_per_token():
    nll = torch.tensor([6.0, 2.0])
    num_tokens = torch.tensor([3, 1])
    kl = torch.tensor([[0.1, 0.4], [0.3, 0.2]])
    terms = elbo_loss(nll, num_tokens, kl, beta=1.0, free_bits=0.0, reduction="mean")
    assert terms.reconstruction.item() == pytest.approx(8.0 / 4)
    assert terms.loss.item() == pytest.approx(2.0 + 0.5)


def test_elbo_free_bits_floor_enters_the_loss_but_not_the_reported_kl():
    nll = torch.tensor([1.0])
    kl = torch.tensor([[0.01, 0.02]])
    terms = elbo_loss(nll, torch.tensor([1]), kl, beta=1.0, free_bits=0.5)
    assert terms.loss.item() == pytest.approx(1.0 + 0.5 + 0.5)
    assert terms.kl.item() == pytest.approx(0.03)


def test_elbo_reported_terms_are_detached():
    nll = torch.tensor([1.0, 2.0], requires_grad=True)
    kl = torch.rand(2, 3, requires_grad=True)
    terms = elbo_loss(nll, torch.tensor([1, 2]), kl, beta=1.0)
    assert terms.loss.requires_grad
    assert not terms.reconstruction.requires_grad and not terms.kl.requires_grad


# 80 steps, 4 cycles -> period 20; 5 steps at zero, ramp over 10 steps, then a plateau.
BETA = {"total_steps": 80, "cycles": 4, "beta_max": 2.0, "zero_ratio": 0.25, "ramp_ratio": 0.5}


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),  # zero phase
        (4, 0.0),
        (5, 0.0),  # ramp starts from zero
        (10, 1.0),  # ramp midpoint: half of beta_max
        (15, 2.0),  # end of the ramp
        (19, 2.0),  # plateau
        (20, 0.0),  # restart of the second cycle
        (30, 1.0),
        (60, 0.0),  # restart of the last cycle
        (79, 2.0),
    ],
)
def test_cyclical_beta_known_values(step, expected):
    assert cyclical_beta(step, **BETA) == pytest.approx(expected)


def test_cyclical_beta_defaults_and_degenerate_cases():
    # Default: no zero phase, ramp over the first half of each of 4 cycles.
    assert cyclical_beta(0, 100) == 0.0
    assert cyclical_beta(25 // 4, 100) == pytest.approx(6 / 12.5)
    assert cyclical_beta(20, 100) == 1.0
    assert cyclical_beta(25, 100) == 0.0
    assert cyclical_beta(3, 0, beta_max=0.7) == 0.7  # no steps known: full weight
    assert cyclical_beta(3, 10, ramp_ratio=0.0, beta_max=0.7) == 0.7  # no ramp: a step


def test_reparameterize_is_differentiable_and_seeded():
    mu = torch.zeros(3, 4, requires_grad=True)
    logvar = torch.zeros(3, 4, requires_grad=True)
    z1 = reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    z2 = reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    torch.testing.assert_close(z1, z2)
    z1.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(3, 4))
    assert logvar.grad is not None and torch.count_nonzero(logvar.grad) > 0
    # sigma -> 0 collapses z onto mu
    z = reparameterize(torch.ones(2, 2), torch.full((2, 2), -200.0))
    assert math.isclose(float(z.sum()), 4.0)
