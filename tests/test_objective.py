"""lmvae.objective: KL, free bits, the ELBO and the beta schedule, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from lmvae.objective import (
    active_units,
    cyclical_beta,
    elbo_loss,
    free_bits_kl,
    gaussian_kl,
    lr_factor,
    reparameterize,
    token_cross_entropy,
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


def test_active_units_on_hand_made_mu():
    mu = torch.tensor(
        [
            [0.0, 1.0, 5.0, 0.00],
            [0.0, -1.0, 5.0, 0.05],
            [0.0, 1.0, 5.0, 0.00],
            [0.0, -1.0, 5.0, 0.05],
        ]
    )
    # Variances (unbiased): 0, 4/3, 0, 0.000833 -> only dim 1 is above 0.01.
    assert active_units(mu) == 1
    assert active_units(mu, threshold=0.0005) == 2
    assert active_units(mu[:1]) == 0  # one sample has no variance


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


def _reference_ce(hidden, weight, bias, gold, scale, cap):
    logits = torch.nn.functional.linear(hidden, weight, bias).float() * scale
    if cap:
        logits = cap * torch.tanh(logits / cap)
    nll = torch.nn.functional.cross_entropy(logits, gold, reduction="none")
    return nll, logits.argmax(-1) == gold


@pytest.mark.parametrize("chunk_elements", [2**21, 32 * 50])  # one chunk; 32 rows, ragged last
@pytest.mark.parametrize(("scale", "cap", "with_bias"), [(1.0, None, False), (0.25, 3.0, True)])
def test_token_cross_entropy_matches_autograd(chunk_elements, scale, cap, with_bias):
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(70, 16, generator=gen, dtype=torch.float64)
    weight = torch.randn(50, 16, generator=gen, dtype=torch.float64)
    bias = torch.randn(50, generator=gen, dtype=torch.float64) if with_bias else None
    gold = torch.randint(0, 50, (70,), generator=gen)
    upstream = torch.rand(70, generator=gen, dtype=torch.float64)

    ours_h = hidden.clone().requires_grad_()
    nll, hits = token_cross_entropy(ours_h, weight, gold, bias, scale, cap, chunk_elements)
    (nll * upstream).sum().backward()
    ref_h = hidden.clone().requires_grad_()
    ref_nll, ref_hits = _reference_ce(ref_h, weight, bias, gold, scale, cap)
    (ref_nll * upstream.float()).sum().backward()

    assert nll.dtype == torch.float32 and hits.dtype == torch.bool
    torch.testing.assert_close(nll, ref_nll)
    assert torch.equal(hits, ref_hits)
    torch.testing.assert_close(ours_h.grad, ref_h.grad, rtol=1e-5, atol=1e-6)


def test_token_cross_entropy_in_bfloat16_keeps_fp32_losses():
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(40, 32, generator=gen)
    weight = torch.randn(300, 32, generator=gen) / 4
    gold = torch.randint(0, 300, (40,), generator=gen)
    h16 = hidden.bfloat16().requires_grad_()
    nll, _ = token_cross_entropy(h16, weight.bfloat16(), gold)
    nll.sum().backward()
    ref_h = hidden.clone().requires_grad_()
    ref_nll, _ = _reference_ce(ref_h, weight, None, gold, 1.0, None)
    ref_nll.sum().backward()
    assert nll.dtype == torch.float32 and h16.grad.dtype == torch.bfloat16
    torch.testing.assert_close(nll, ref_nll, rtol=0.05, atol=0.1)
    torch.testing.assert_close(h16.grad.float(), ref_h.grad, rtol=0.05, atol=0.05)


def test_token_cross_entropy_without_grad_and_with_a_trainable_head():
    hidden = torch.randn(5, 4, requires_grad=True)
    weight = torch.randn(9, 4)
    gold = torch.tensor([0, 1, 2, 3, 8])
    with torch.no_grad():
        nll, _ = token_cross_entropy(hidden, weight, gold)
    assert not nll.requires_grad
    with pytest.raises(ValueError, match="hidden states only"):
        token_cross_entropy(hidden, weight.requires_grad_(), gold)


def test_lr_factor_gives_transformers_schedules_numbers():
    from transformers import get_scheduler

    names = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
    for total, warmup in ((1, 0), (7, 1), (57, 3), (912, 45)):
        for ours, theirs in names.items():
            opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            sched = get_scheduler(theirs, opt, num_warmup_steps=warmup, num_training_steps=total)
            expected = [fn(step) for step in range(total + 2) for fn in sched.lr_lambdas]
            got = [lr_factor(step, warmup, total, ours) for step in range(total + 2)]
            assert got == expected, (ours, total, warmup)
