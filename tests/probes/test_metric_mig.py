from __future__ import annotations

import json

import numpy as np
import pytest

from lmvae.probes import mig


def _h(*p: float) -> float:
    p = np.asarray(p)
    return float(-np.sum(p * np.log(p)))


def test_mig_hand_computed():
    f = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    g = f % 2
    z1 = f // 2  # I(z1; f) = H(z1) = log 2, independent of g
    z2 = (f == 0).astype(float)  # I(z2; f) = H(1/4, 3/4); I(z2; g) = H(1/4, 3/4) - log(2) / 2
    out = mig(np.column_stack([z1, z2]).astype(float), np.column_stack([f, g]), n_bins=2)
    h2 = _h(0.25, 0.75)
    expected_f = (np.log(2) - h2) / np.log(4)
    expected_g = (h2 - 0.5 * np.log(2) - 0.0) / np.log(2)
    assert out["mig_per_factor"] == pytest.approx([expected_f, expected_g])
    assert out["mig"] == pytest.approx((expected_f + expected_g) / 2)


def test_mig_perfect_rotated_noise(synth):
    f = synth["factors"]
    perfect = mig(synth["perfect"], f)["mig"]
    assert perfect > 0.9
    assert mig(synth["rotated"], f)["mig"] < perfect - 0.5
    assert mig(synth["entangled"], f)["mig"] < 0.1
    assert mig(synth["noise"], f)["mig"] < 0.1


def test_mig_dict_is_json_and_deterministic(synth):
    out = mig(synth["perfect"][:300], synth["factors"][:300])
    assert set(out) == {"mig", "mig_per_factor"} and len(out["mig_per_factor"]) == 4
    assert json.loads(json.dumps(out)) == out
    assert mig(synth["perfect"][:300], synth["factors"][:300]) == out


def test_mig_string_factors_match_int_factors(synth):
    f = synth["factors"][:300]
    names = np.array(list("abcdef"), dtype=object)[f]
    assert mig(synth["perfect"][:300], names) == mig(synth["perfect"][:300], f)


def test_mig_needs_two_latents():
    with pytest.raises(ValueError, match="at least 2 latent"):
        mig(np.zeros((10, 1)), (np.arange(10) % 2)[:, None])
