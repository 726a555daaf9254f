from __future__ import annotations

import json

import numpy as np
import pytest

from lmvae.probes import beta_vae


def test_beta_vae_perfect_entangled_noise(synth):
    f = synth["factors"]
    perfect = beta_vae(synth["perfect"], f)
    assert perfect["chance"] == 0.25
    assert perfect["beta_vae"] > 0.9
    # z-diff is known to be fooled by generic rotations; the Hadamard mix defeats it.
    assert beta_vae(synth["entangled"], f)["beta_vae"] < perfect["beta_vae"] - 0.4
    assert beta_vae(synth["noise"], f)["beta_vae"] == pytest.approx(0.25, abs=0.1)


def test_beta_vae_deterministic(synth):
    c, f = synth["rotated"], synth["factors"]
    out = beta_vae(c, f, n_train=100, n_eval=50, seed=7)
    assert json.loads(json.dumps(out)) == out
    assert beta_vae(c, f, n_train=100, n_eval=50, seed=7) == out
    assert set(out) == {"beta_vae", "train_accuracy", "eval_accuracy", "chance"}


def test_beta_vae_skips_factors_without_repeated_values(synth):
    n = 600
    f = np.column_stack([synth["factors"][:n, :2], np.arange(n)])  # third factor: all unique
    codes = np.column_stack([synth["perfect"][:n, :2], synth["noise"][:n, :1]])
    out = beta_vae(codes, f, n_train=200, n_eval=100)
    assert out["chance"] == 0.5
    assert out["beta_vae"] > 0.9


def test_beta_vae_string_labels(synth):
    c, f = synth["perfect"][:500], synth["factors"][:500]
    names = np.array(list("abcdef"), dtype=object)[f]
    assert beta_vae(c, names, n_train=100, n_eval=50) == beta_vae(c, f, n_train=100, n_eval=50)
