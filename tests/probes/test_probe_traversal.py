from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from lmvae.probes.traversal import traversal_values, traverse, traverse_direction

SEEDS = ["the cat sat on the mat .", "a dog ran in the park ."]


def test_posterior_values_use_logvar_not_sigma():
    mu, logvar = 1.5, np.log(0.25)  # sigma = 0.5
    q = np.linspace(0.05, 0.95, 7)
    values = traversal_values(mu, logvar, steps=7, span="posterior", quantiles=(0.05, 0.95))
    np.testing.assert_allclose(values, norm.ppf(q, loc=1.5, scale=0.5), rtol=1e-12)
    # Passing the standard deviation where a log-variance is expected would give another range.
    assert not np.allclose(values, norm.ppf(q, loc=1.5, scale=np.exp(0.5 * 0.5)))
    assert values[3] == pytest.approx(1.5)
    assert np.all(np.diff(values) > 0)


def test_prior_values_ignore_posterior():
    q = np.linspace(0.1, 0.9, 5)
    values = traversal_values(3.0, 2.0, steps=5, span="prior", quantiles=(0.1, 0.9))
    np.testing.assert_allclose(values, norm.ppf(q), rtol=1e-12)
    np.testing.assert_allclose(values, -values[::-1], atol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"steps": 1},
        {"span": "uniform"},
        {"quantiles": (0.9, 0.1)},
        {"quantiles": (0.0, 0.5)},
        {"quantiles": (0.1,)},
    ],
)
def test_traversal_values_bad_input(kwargs):
    with pytest.raises(ValueError):
        traversal_values(0.0, 0.0, **kwargs)


@pytest.fixture(scope="module")
def vae(make_vae):
    return make_vae("bert", "gpt2", latent_size=8)


def test_traverse_dims_one_batched_decode(vae, monkeypatch):
    calls = []
    decode = vae.decode

    def counting_decode(z, **kw):
        calls.append(z.clone())
        return decode(z, **kw)

    monkeypatch.setattr(vae, "decode", counting_decode)
    rows = traverse(vae, SEEDS, dims=[0, 5], steps=3, max_new_tokens=4)
    assert len(calls) == 1 and calls[0].shape == (2 * 2 * 3, 8)
    assert len(rows) == 12
    assert set(rows[0]) == {"seed", "dim", "step", "value", "text"}
    assert [r["dim"] for r in rows[:6]] == [0, 0, 0, 5, 5, 5]
    assert [r["step"] for r in rows[:3]] == [0, 1, 2]
    assert all(isinstance(r["text"], str) for r in rows)

    mu, logvar = vae.posterior(SEEDS)
    z = calls[0].double()
    for k, row in enumerate(rows):
        i, d = SEEDS.index(row["seed"]), row["dim"]
        expected = traversal_values(mu[i, d].item(), logvar[i, d].item(), 3)[row["step"]]
        assert row["value"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
        assert z[k, d].item() == pytest.approx(row["value"], rel=1e-5, abs=1e-6)
        others = [j for j in range(8) if j != d]
        torch.testing.assert_close(z[k, others], mu[i, others].double(), rtol=1e-5, atol=1e-6)
    # The middle step sits at the posterior mean: it decodes like the seed's own latent.
    middle = [r["text"] for r in rows if r["step"] == 1]
    assert middle[0] == middle[1] == vae.decode(mu[:1], max_new_tokens=4)[0]


def test_traverse_deterministic_and_all_dims_default(vae):
    a = traverse(vae, SEEDS[:1], steps=2, span="prior", max_new_tokens=3)
    b = traverse(vae, SEEDS[:1], steps=2, span="prior", max_new_tokens=3)
    assert a == b
    assert sorted({r["dim"] for r in a}) == list(range(8))
    values = sorted({round(r["value"], 9) for r in a})
    assert values == pytest.approx(norm.ppf([0.05, 0.95]).round(9))


def test_traverse_direction(vae, monkeypatch):
    direction = np.zeros(8)
    direction[2] = 3.0  # normalised to e_2
    captured = []
    decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda z, **kw: captured.append(z) or decode(z, **kw))
    rows = traverse_direction(vae, SEEDS, direction, steps=3, max_new_tokens=3)
    assert {r["dim"] for r in rows} == {"direction"}
    by_dim = traverse(vae, SEEDS, dims=[2], steps=3, max_new_tokens=3)
    assert [r["value"] for r in rows] == pytest.approx([r["value"] for r in by_dim], rel=1e-6)
    assert [r["text"] for r in rows] == [r["text"] for r in by_dim]
    # An oblique direction: the projection z . u takes the traversal values.
    u = torch.ones(8, dtype=torch.float64) / 8**0.5
    rows = traverse(vae, SEEDS[:1], direction=torch.ones(8), steps=3, max_new_tokens=3)
    z = captured[-1].double()
    np.testing.assert_allclose((z @ u).numpy(), [r["value"] for r in rows], rtol=1e-5)
    both = traverse(vae, SEEDS[:1], dims=[1], direction=torch.ones(8), steps=2, max_new_tokens=3)
    assert [r["dim"] for r in both] == [1, 1, "direction", "direction"]


def test_traverse_at_given_values(vae):
    """A slider position: one coordinate set to a given value, the rest at the posterior mean."""
    rows = traverse(vae, SEEDS[:1], dims=[3], values=[1.25], max_new_tokens=4)
    assert [(r["dim"], r["step"], r["value"]) for r in rows] == [(3, 0, 1.25)]
    z = vae.encode(SEEDS[:1])
    z[0, 3] = 1.25
    assert rows[0]["text"] == vae.decode(z, max_new_tokens=4)[0]
    assert len(traverse(vae, SEEDS, dims=[0, 1], values=[-1, 0, 1], max_new_tokens=2)) == 12


@pytest.mark.parametrize(
    "kwargs",
    [
        {"values": []},
        {"values": [float("nan")]},
        {"values": ["x"]},
        {"dims": [8]},
        {"dims": [-1]},
        {"dims": []},
        {"dims": [0.5]},
        {"steps": 1},
        {"span": "both"},
        {"direction": np.zeros(8)},
        {"direction": np.ones(3)},
        {"quantiles": (0.5, 0.5)},
    ],
)
def test_traverse_bad_input(vae, kwargs):
    with pytest.raises(ValueError):
        traverse(vae, SEEDS, **kwargs)


def test_traverse_bad_seeds(vae):
    with pytest.raises(ValueError):
        traverse(vae, [])
    with pytest.raises(ValueError):
        traverse_direction(vae, SEEDS, None)
