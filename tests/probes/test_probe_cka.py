"""lmvae.probes.cka: linear CKA on representations with known answers, and the layer-wise
encoder-decoder probe on tiny backbones."""

from __future__ import annotations

import numpy as np
import pytest
from support import CORPUS

from lmvae.errors import ConfigError
from lmvae.probes import encoder_decoder_cka, layerwise_cka, linear_cka


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((400, 16))


@pytest.mark.parametrize("debiased", [True, False])
def test_a_representation_matches_itself(x, debiased):
    assert linear_cka(x, x, debiased) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("debiased", [True, False])
def test_rotation_scale_and_shift_leave_cka_at_one(x, debiased):
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((16, 16)))
    assert linear_cka(x, 3.0 * x @ q + 5.0, debiased) == pytest.approx(1.0, abs=1e-9)


def test_independent_noise_is_near_zero_once_debiased(x):
    noise = np.random.default_rng(2).standard_normal((400, 64))
    assert abs(linear_cka(x, noise)) < 0.05
    assert linear_cka(x, noise, debiased=False) > abs(linear_cka(x, noise))  # the bias


def test_a_partly_shared_representation_lies_between(x):
    y = np.concatenate([x[:, :8], np.random.default_rng(3).standard_normal((400, 8))], axis=1)
    assert 0.2 < linear_cka(x, y) < 0.8


def test_layerwise_matrix_and_errors(x):
    noise = np.random.default_rng(4).standard_normal((400, 8))
    m = layerwise_cka([x, noise], [noise, x, x[:, :4]])
    assert m.shape == (2, 3)
    assert m[0, 1] == pytest.approx(1.0) and m[1, 0] == pytest.approx(1.0)
    assert abs(m[0, 0]) < 0.05
    with pytest.raises(ConfigError, match="same examples"):
        linear_cka(x, x[:10])
    with pytest.raises(ConfigError, match="at least 4"):
        linear_cka(x[:3], x[:3])


def test_encoder_decoder_cka_covers_every_layer_pair(make_vae):
    vae = make_vae("bert", "llama-gqa").eval()
    out = encoder_decoder_cka(vae, CORPUS[:24], batch_size=8)
    layers = 3  # embeddings + 2 layers on both sides
    assert np.asarray(out["matrix"]).shape == (layers, layers)
    assert out["n"] == 24 and -1.0 <= out["mean"] <= out["max"] <= 1.0
    assert out["matrix"][out["best_pair"][0]][out["best_pair"][1]] == round(out["max"], 4)
