from __future__ import annotations

import json

import pytest

from lmvae.probes import factor_vae


def test_factor_vae_perfect_rotated_noise(synth):
    f = synth["factors"]
    perfect = factor_vae(synth["perfect"], f)
    assert perfect["factor_vae"] > 0.9
    assert perfect["n_active_dims"] == 6
    assert factor_vae(synth["rotated"], f)["factor_vae"] < perfect["factor_vae"]
    assert factor_vae(synth["entangled"], f)["factor_vae"] < 0.5
    assert factor_vae(synth["noise"], f)["factor_vae"] == pytest.approx(0.25, abs=0.1)


def test_factor_vae_prunes_inactive_dims(synth):
    f = synth["factors"]
    tiny = synth["perfect"] * 0.01  # variance 1e-4 < min_variance everywhere
    out = factor_vae(tiny, f, n_train=50, n_eval=50)
    assert out["n_active_dims"] == 0 and out["factor_vae"] == 0.0
    kept = factor_vae(tiny, f, min_variance=0.0)
    assert kept["n_active_dims"] == 6 and kept["factor_vae"] > 0.9


def test_factor_vae_deterministic(synth):
    c, f = synth["rotated"], synth["factors"]
    out = factor_vae(c, f, n_train=100, n_eval=50, seed=11)
    assert json.loads(json.dumps(out)) == out
    assert factor_vae(c, f, n_train=100, n_eval=50, seed=11) == out


def test_factor_vae_rejects_batch_of_one(synth):
    with pytest.raises(ValueError, match="batch_size"):
        factor_vae(synth["perfect"], synth["factors"], batch_size=1)
