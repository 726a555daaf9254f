"""lmvae.injection: z -> per-layer K/V slots (and an optional embedding offset)."""

from __future__ import annotations

import torch

from lmvae.injection import KVShape, LatentInjector

SHAPE = KVShape(num_layers=3, num_kv_heads=2, head_dim=5, hidden_size=12)


def test_slot_numel():
    assert SHAPE.slot_numel == 3 * 2 * 2 * 5


def test_output_layout_and_slots_are_distinct_projections():
    torch.manual_seed(0)
    inj = LatentInjector(latent_size=4, shape=SHAPE, num_slots=6)
    z = torch.randn(7, 4)
    kv, offset = inj(z)
    assert kv.shape == (7, 3, 2, 2, 6, 5)  # batch, layers, k/v, kv_heads, slots, head_dim
    assert offset is None
    # Row b of the output depends only on z[b].
    kv_single, _ = inj(z[3:4])
    torch.testing.assert_close(kv[3:4], kv_single)
    # The flat projection is exactly reshaped (batch, layers, 2, heads, slots, dim).
    flat = inj.kv(z).view(7, 3, 2, 2, 6, 5)
    torch.testing.assert_close(kv, flat)


def test_rank_factorises_the_projection():
    full = LatentInjector(32, SHAPE, num_slots=8)
    low = LatentInjector(32, SHAPE, num_slots=8, rank=4)
    n_full = sum(p.numel() for p in full.parameters())
    n_low = sum(p.numel() for p in low.parameters())
    out = SHAPE.slot_numel * 8
    assert n_full == 32 * out + out
    assert n_low == 32 * 4 + 4 * out + out
    kv, _ = low(torch.randn(2, 32))
    assert kv.shape == (2, 3, 2, 2, 8, 5)


def test_embed_injection_starts_at_zero_but_trains():
    inj = LatentInjector(4, SHAPE, num_slots=1, embed_injection=True)
    z = torch.randn(3, 4)
    _, offset = inj(z)
    assert offset.shape == (3, 12) and torch.count_nonzero(offset) == 0
    # A zero output, but the weight still has a gradient path from any loss on the offset.
    loss = (offset * torch.randn(3, 12)).sum()
    loss.backward()
    assert torch.count_nonzero(inj.embed.weight.grad) > 0


def test_calibrate_gives_each_slot_number_the_target_mean_and_spread():
    torch.manual_seed(0)
    mean = torch.randn(3, 2, 2, 5) * 4
    std = torch.rand(3, 2, 2, 5) + 0.5
    for rank, hidden in ((0, 0), (6, 0), (0, 32)):
        inj = LatentInjector(16, SHAPE, num_slots=4, rank=rank, hidden=hidden)
        inj.calibrate(mean, std)
        assert inj.calibrated
        kv, _ = inj(torch.randn(20_000, 16))  # (B, layers, 2, kv_heads, slots, head_dim)
        got_mean = kv.mean(0)  # (layers, 2, kv_heads, slots, head_dim)
        got_std = kv.std(0)
        for slot in range(4):
            torch.testing.assert_close(got_mean[..., slot, :], mean, atol=0.05, rtol=0.02)
            torch.testing.assert_close(got_std[..., slot, :], std, atol=0.03, rtol=0.03)


def test_a_calibrated_soft_prompt_starts_among_the_token_embeddings():
    torch.manual_seed(0)
    embeddings = torch.randn(500, 12) * 0.3 + torch.linspace(-1, 1, 12)
    inj = LatentInjector(16, SHAPE, num_slots=3, mode="prompt", hidden=24)
    inj.calibrate_prompt(embeddings)
    prompt, offset = inj(torch.randn(20_000, 16))
    assert prompt.shape == (20_000, 3, 12) and offset is None
    for slot in range(3):
        torch.testing.assert_close(prompt[:, slot].mean(0), embeddings.mean(0), atol=0.03, rtol=0)
        torch.testing.assert_close(prompt[:, slot].std(0), embeddings.std(0), atol=0.02, rtol=0.05)
