"""lmvae.prior: the closed-form KL to a Gaussian component (hand computation and Monte Carlo),
the mixture prior's components per category, generation of a chosen category after training,
and saving the learned prior."""

from __future__ import annotations

import json
import math

import pytest
import torch
from support import CORPUS

from lmvae import LanguageVAE, TrainConfig, train
from lmvae.annotations import AnnotatedCorpus
from lmvae.config import PriorConfig
from lmvae.errors import ConfigError
from lmvae.objective import gaussian_kl
from lmvae.prior import GaussianPrior, MixturePrior, gaussian_kl_to

CATEGORIES = ["the" if t.startswith("the ") else "other" for t in CORPUS]


def test_kl_to_a_component_by_hand():
    # q = N(1, 1), p = N(0, 4): 0.5 * (log 4 - 0 + (1 + 1) / 4 - 1) = 0.5 * log 4 - 0.25
    kl = gaussian_kl_to(
        torch.tensor([[1.0]]), torch.zeros(1, 1), torch.zeros(1, 1), torch.full((1, 1), math.log(4))
    )
    assert kl.item() == pytest.approx(0.5 * math.log(4) - 0.25, abs=1e-6)
    # q = N(2, e^-1), p = N(-1, e): 0.5 * (1 + 1 + (e^-1 + 9) / e - 1)
    kl = gaussian_kl_to(
        torch.tensor([[2.0]]), torch.tensor([[-1.0]]), torch.tensor([[-1.0]]), torch.tensor([[1.0]])
    )
    expected = 0.5 * (1 + 1 + (math.exp(-1) + 9) / math.e - 1)
    assert kl.item() == pytest.approx(expected, abs=1e-6)
    # Against the standard normal it is the usual Gaussian KL.
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    zeros = torch.zeros(4, 3)
    torch.testing.assert_close(gaussian_kl_to(mu, logvar, zeros, zeros), gaussian_kl(mu, logvar))


def test_kl_matches_a_monte_carlo_estimate():
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([-0.5, 0.4, -2.0])
    pmu, plogvar = torch.tensor([-0.7, 0.5, 1.0]), torch.tensor([0.3, -0.2, 0.1])
    z = mu + torch.exp(0.5 * logvar) * torch.randn(400_000, 3, generator=gen, dtype=torch.float64)
    q = torch.distributions.Normal(mu.double(), torch.exp(0.5 * logvar).double())
    p = torch.distributions.Normal(pmu.double(), torch.exp(0.5 * plogvar).double())
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    closed = gaussian_kl_to(mu[None], logvar[None], pmu[None], plogvar[None])[0].double()
    torch.testing.assert_close(mc, closed, atol=0.01, rtol=0.01)


def test_mixture_kl_uses_each_sentences_own_component():
    prior = MixturePrior(2, PriorConfig("mixture", ["a", "b", "c"]))
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[0.0, 0.0], [3.0, -1.0], [1.0, 1.0]]))
        prior.logvars.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.5, 0.5]]))
    mu, logvar = torch.tensor([[1.0, 2.0], [1.0, 2.0]]), torch.tensor([[0.1, -0.3], [0.1, -0.3]])
    category = prior.category_ids(["b", "a"])
    assert category.tolist() == [1, 0]
    kl = prior.kl(mu, logvar, category)
    torch.testing.assert_close(
        kl[0], gaussian_kl_to(mu[0], logvar[0], prior.means[1], prior.logvars[1])
    )
    torch.testing.assert_close(kl[1], gaussian_kl(mu[1:], logvar[1:])[0])
    with pytest.raises(ConfigError, match="needs the category"):
        prior.kl(mu, logvar)
    with pytest.raises(
        ConfigError, match=r"category 'zebra' is not in the prior \(categories: a, b, c\)"
    ):
        prior.category_ids(["a", "zebra"])


def test_sampling_a_component_draws_from_its_gaussian():
    prior = MixturePrior(3, PriorConfig("mixture", ["x", "y"]))
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[5.0, -5.0, 0.0], [0.0, 0.0, 0.0]]))
        prior.logvars.copy_(torch.tensor([[math.log(0.25)] * 3, [0.0] * 3]))
    z = prior.sample(20_000, prior.category_ids(["x"] * 20_000), torch.Generator().manual_seed(1))
    torch.testing.assert_close(z.mean(0), torch.tensor([5.0, -5.0, 0.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.full((3,), 0.5), atol=0.02, rtol=0)
    mixed = prior.sample(20_000, generator=torch.Generator().manual_seed(2))
    assert 0.45 < (mixed[:, 0] > 2.5).float().mean() < 0.55  # uniform over components
    assert GaussianPrior(3).sample(5).shape == (5, 3)


def test_mixture_config_needs_categories(make_vae):
    with pytest.raises(ConfigError, match="at least 2 categories, got 1"):
        make_vae(prior_kind="mixture", prior_categories=["only"])
    vae = make_vae()
    with pytest.raises(ConfigError, match="Gaussian prior: it takes no category"):
        vae.sample_prior(2, category="the")


@pytest.fixture(scope="module")
def trained(make_vae):
    """A mixture-prior VAE trained on the test corpus, categories: starts with "the" or not."""
    vae = make_vae(prior_kind="mixture", prior_categories=["other", "the"], decoder_max_length=16)
    cfg = TrainConfig(epochs=40, batch_size=8, free_bits=0.1, progress=False, lr=1e-2)
    train(vae, AnnotatedCorpus(list(CORPUS), None, CATEGORIES), (), cfg)
    return vae.eval()


def test_training_pulls_each_category_to_its_component(trained):
    mu = trained.encode(CORPUS)
    nearest = torch.cdist(mu, trained.prior.means.detach()).argmin(1)
    assert (nearest == trained.category_ids(CATEGORIES)).float().mean() >= 0.75


def test_generation_of_a_chosen_category(trained):
    def starting_with_the(category):
        texts = trained.sample_prior(20, seed=0, category=category)
        return sum(t.startswith("the ") for t in texts)

    # 23 of the 40 training sentences start with "the": the chosen component must move the
    # share of "the ..." samples well away from the other component's.
    chosen, other = starting_with_the("the"), starting_with_the("other")
    assert chosen >= 14 and chosen - other >= 5, (chosen, other)
    with pytest.raises(ConfigError, match="category 'dogs' is not in the prior"):
        trained.sample_prior(2, category="dogs")


def test_sample_prior_decodes_the_components_draws(trained):
    gen = torch.Generator().manual_seed(4)
    z = trained.prior.sample(3, trained.category_ids(["the"] * 3), gen)
    expected = trained.decode(z, generator=torch.Generator().manual_seed(4))
    assert trained.sample_prior(3, seed=4, category="the") == expected


def test_training_without_categories_is_named(make_vae):
    vae = make_vae(prior_kind="mixture", prior_categories=["other", "the"])
    with pytest.raises(ConfigError, match="needs the category .'category'. of every sentence"):
        train(vae, CORPUS, (), TrainConfig(epochs=1, progress=False))
    bad = AnnotatedCorpus(CORPUS[:2], None, ["the", "cats"])
    with pytest.raises(ConfigError, match="category 'cats' is not in the prior"):
        train(vae, bad, (), TrainConfig(epochs=1, progress=False))


def test_save_and_load_keep_the_learned_prior(trained, tmp_path):
    trained.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["prior"]["kind"] == "mixture"
    assert config["prior"]["categories"] == ["other", "the"]
    loaded = LanguageVAE.from_pretrained(tmp_path / "m")
    for name in ("means", "logvars"):
        assert torch.equal(getattr(loaded.prior, name), getattr(trained.prior, name))
    assert loaded.sample_prior(4, seed=1, category="other") == trained.sample_prior(
        4, seed=1, category="other"
    )
    texts = CORPUS[:3]
    batch = {**loaded.decoder_inputs(texts), "category": loaded.category_ids(CATEGORIES[:3])}
    enc = loaded.encoder_inputs(texts)
    kw = {"encoder_input_ids": enc["input_ids"], "encoder_attention_mask": enc["attention_mask"]}
    a = loaded(**batch, **kw, sample=False).kl_per_dim
    b = trained(**batch, **kw, sample=False).kl_per_dim
    assert torch.equal(a, b)
