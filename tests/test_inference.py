"""lmvae.inference: encode, decode, reconstruct, interpolate and prior samples on a built
model, and the checks on what users pass them."""

from __future__ import annotations

import pytest
import torch
from support import CORPUS, randomized_vae

from lmvae.errors import ConfigError
from lmvae.inference import interpolate_latents

TEXTS = CORPUS[:4]
GREEDY = {"max_new_tokens": 8}


@pytest.fixture(scope="module")
def vae(make_vae):
    return randomized_vae(make_vae)


def test_encode_posterior_and_sampling(vae):
    mu, logvar = vae.posterior(TEXTS)
    assert mu.shape == logvar.shape == (4, 8)
    torch.testing.assert_close(vae.encode(TEXTS), mu)
    # batching does not change results
    torch.testing.assert_close(vae.encode(TEXTS, batch_size=1), mu, atol=1e-5, rtol=1e-5)
    s1 = vae.encode(TEXTS, sample=True, generator=torch.Generator().manual_seed(0))
    s2 = vae.encode(TEXTS, sample=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s1, s2)
    assert not torch.allclose(s1, mu)
    assert not torch.allclose(mu[0], mu[1])  # different sentences, different latents


def test_reconstruct_is_decode_of_encode(vae):
    assert vae.reconstruct(TEXTS, **GREEDY) == vae.decode(vae.encode(TEXTS), **GREEDY)
    out = vae.reconstruct(TEXTS, strategy="beam", num_beams=2, max_new_tokens=5)
    assert len(out) == 4 and all(len(t.split()) <= 5 for t in out)


def test_reconstruct_batches_similar_lengths_and_keeps_the_input_order(vae, monkeypatch):
    texts = ["a b c d e f g", "a b", "a b c d e f", "a", "a b c d e f g h", "a b c"]
    texts = [t.replace("a", "the").replace("b", "cat") for t in texts]
    expected = vae.decode(vae.encode(texts), batch_size=2, **GREEDY)
    seen = []
    original = vae.decode

    def spy(z, *args, **kwargs):
        seen.append(z.clone())
        return original(z, *args, **kwargs)

    monkeypatch.setattr(vae, "decode", spy)
    assert vae.reconstruct(texts, batch_size=2, **GREEDY) == expected
    order = sorted(range(len(texts)), key=lambda i: len(texts[i].split()))
    torch.testing.assert_close(seen[0], vae.encode(texts)[order])  # shortest first
    sampled = vae.reconstruct(texts, strategy="sample", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(seen[-1], vae.encode(texts))  # sampling: input order
    assert len(sampled) == len(texts)


def test_input_errors(vae):
    with pytest.raises(ConfigError, match=r"latents must be \(N, 8\)"):
        vae.decode(torch.zeros(2, 7))
    with pytest.raises(ConfigError, match="single string"):
        vae.encode("the cat sat")
    with pytest.raises(ConfigError, match="no sentences"):
        vae.encode([])
    with pytest.raises(ConfigError, match="steps >= 2"):
        vae.interpolate("a", "b", steps=1)


def test_interpolate_endpoints(vae):
    a, b = "the cat sat on the mat", "birds fly south in winter"
    out = vae.interpolate(a, b, steps=4, **GREEDY)
    assert len(out) == 4
    za, zb = vae.encode([a, b])
    assert out[0] == vae.decode(za[None], **GREEDY)[0]
    assert out[-1] == vae.decode(zb[None], **GREEDY)[0]
    assert vae.interpolate(a, b, steps=3, mode="slerp", **GREEDY)[0] == out[0]


def test_interpolate_latents_linear_and_slerp():
    za, zb = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    lin = interpolate_latents(za, zb, 3)
    torch.testing.assert_close(lin, torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, 2.0]]))
    sl = interpolate_latents(za, zb, 3, "slerp")
    torch.testing.assert_close(sl[0], za)
    torch.testing.assert_close(sl[-1], zb)
    s = 2**-0.5
    torch.testing.assert_close(sl[1], torch.tensor([s, 2 * s]))  # on the great circle
    with pytest.raises(ConfigError, match="unknown interpolation mode"):
        interpolate_latents(za, zb, 3, "cubic")


def test_sample_prior_is_seeded(vae):
    a = vae.sample_prior(3, seed=1, **GREEDY)
    assert a == vae.sample_prior(3, seed=1, **GREEDY)
    assert len(a) == 3
    s = vae.sample_prior(3, seed=1, strategy="sample", **GREEDY)
    assert s == vae.sample_prior(3, seed=1, strategy="sample", **GREEDY)


def test_unseeded_sample_prior_draws_new_latents(vae, monkeypatch):
    seen = []
    monkeypatch.setattr(vae, "decode", lambda z, **kw: seen.append(z.clone()) or [""] * len(z))
    torch.manual_seed(1)
    vae.sample_prior(3)
    torch.manual_seed(2)
    vae.sample_prior(3)
    assert not torch.equal(seen[0], seen[1])
