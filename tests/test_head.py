"""lmvae.head: the chunked token cross-entropy against autograd, and the family quirks."""

from __future__ import annotations

import pytest
import torch

from lmvae.head import token_cross_entropy


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
