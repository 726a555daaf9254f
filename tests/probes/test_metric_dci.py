from __future__ import annotations

import json

import numpy as np
import pytest

from lmvae.probes import dci
from lmvae.probes.metrics import dci_from_importance


def test_dci_from_importance_extremes():
    ideal = dci_from_importance(np.eye(3))
    assert ideal["disentanglement"] == pytest.approx(1.0, abs=1e-6)
    assert ideal["completeness"] == pytest.approx(1.0, abs=1e-6)
    flat = dci_from_importance(np.ones((3, 3)))
    assert flat["disentanglement"] == pytest.approx(0.0, abs=1e-6)
    assert flat["completeness"] == pytest.approx(0.0, abs=1e-6)


def test_dci_from_importance_hand_computed():
    # code 0 -> factor 0 only; code 1 split evenly over both factors (entropy base 2 = 1).
    r = np.array([[2.0, 0.0], [1.0, 1.0]])
    out = dci_from_importance(r)
    assert out["disentanglement_per_code"] == pytest.approx([1.0, 0.0], abs=1e-6)
    assert out["disentanglement"] == pytest.approx(0.5, abs=1e-6)  # code weights 2/4, 2/4
    p = np.array([2 / 3, 1 / 3])
    c0 = 1 + np.sum(p * np.log2(p))  # factor 0: importance (2, 1) over the 2 codes
    assert out["completeness_per_factor"] == pytest.approx([c0, 1.0], abs=1e-6)
    assert out["completeness"] == pytest.approx(0.75 * c0 + 0.25, abs=1e-6)


@pytest.mark.parametrize("model", ["gbt", "lasso"])
def test_dci_perfect_rotated_noise(synth, model):
    f = synth["factors"]
    perfect = dci(synth["perfect"], f, model=model)
    assert perfect["disentanglement"] > 0.8
    assert perfect["completeness"] > 0.8
    assert perfect["informativeness"] > 0.9
    for name in ("rotated", "entangled"):
        bad = dci(synth[name], f, model=model)
        assert bad["disentanglement"] < perfect["disentanglement"] - 0.4, name
        assert bad["completeness"] < perfect["completeness"] - 0.4, name
    assert dci(synth["entangled"], f, model=model)["disentanglement"] < 0.1
    noise = dci(synth["noise"], f, model=model)
    assert noise["informativeness"] < 0.35  # chance is ~0.25 (3-6 values per factor)


def test_dci_dict_is_json_and_deterministic(synth):
    c, f = synth["rotated"][:400], synth["factors"][:400]
    out = dci(c, f, seed=3)
    assert json.loads(json.dumps(out)) == out
    assert np.asarray(out["importance_matrix"]).shape == (6, 4)
    assert dci(c, f, seed=3) == out


def test_dci_rejects_unknown_model(synth):
    with pytest.raises(ValueError, match="model must be"):
        dci(synth["perfect"], synth["factors"], model="forest")
