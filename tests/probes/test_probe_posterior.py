"""lmvae.probes.posterior: decodings of a sentence's posterior mean and samples."""

from __future__ import annotations

import pytest
import torch

from lmvae.probes.posterior import posterior_samples
from lmvae.probes.records import model_needs


@pytest.fixture(scope="module")
def vae(make_vae):
    return make_vae("bert", "gpt2", latent_size=8)


def test_mean_and_samples_in_one_batched_decode(vae, corpus, monkeypatch):
    calls = []
    decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda z, **kw: calls.append(z) or decode(z, **kw))
    rows = posterior_samples(vae, corpus[:2], samples=3, seed=1, max_new_tokens=4)
    assert len(calls) == 1 and calls[0].shape == (2 * 4, 8)
    mu, logvar = vae.posterior(corpus[:2])
    for i, row in enumerate(rows):
        assert row["text"] == corpus[i] and len(row["samples"]) == 3
        assert row["reconstruction"] == decode(mu[i : i + 1], max_new_tokens=4)[0]
        torch.testing.assert_close(torch.tensor(row["sigma"]), (0.5 * logvar[i]).exp())
        assert row["mean_sigma"] == pytest.approx(sum(row["sigma"]) / 8, rel=1e-5)
    # The samples lie around the mean at the posterior's spread, and the seed fixes them.
    noise = (calls[0][2:].reshape(3, 2, 8) - mu) / (0.5 * logvar).exp()
    assert 0.3 < float(noise.std()) < 2.0
    again = posterior_samples(vae, corpus[:2], samples=3, seed=1, max_new_tokens=4)
    assert again == rows


@pytest.mark.parametrize("kwargs", [{"texts": "one string"}, {"texts": []}, {"samples": -1}])
def test_bad_input(vae, corpus, kwargs):
    args = {"texts": corpus[:1], "samples": 2, **kwargs}
    with pytest.raises(ValueError):
        posterior_samples(vae, **args)


def test_model_needs(vae, make_vae):
    assert model_needs(vae) == {
        "word_labels": False, "decoder_labels": False, "label_dropout": 0.0, "labels": [],
        "category": None, "categories": [],
    }  # fmt: skip
    conditioned = make_vae(
        "bert", "gpt2", latent_size=4,
        annotations={"labels": ["A", "B"], "encoder": True, "decoder": True},
        prior_kind="mixture", prior_categories=["x", "y"], prior_field="kind",
    )  # fmt: skip
    needs = model_needs(conditioned)
    assert needs["word_labels"] and needs["decoder_labels"] and needs["label_dropout"] > 0
    assert needs["labels"] == ["A", "B"]
    assert (needs["category"], needs["categories"]) == ("kind", ["x", "y"])
