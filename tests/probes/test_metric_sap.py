from __future__ import annotations

import json

import numpy as np
import pytest

from lmvae.probes import sap
from lmvae.probes.metrics import sap_from_scores


def test_sap_from_scores_hand_computed():
    scores = np.array([[0.9, 0.2], [0.3, 0.6], [0.1, 0.5]])
    assert sap_from_scores(scores) == pytest.approx([0.6, 0.1])
    with pytest.raises(ValueError, match="n_latents>=2"):
        sap_from_scores(np.ones((1, 3)))


def test_sap_perfect_rotated_noise(synth):
    f = synth["factors"]
    perfect = sap(synth["perfect"], f)
    assert perfect["sap"] > 0.5
    assert sap(synth["rotated"], f)["sap"] < perfect["sap"] - 0.4
    assert sap(synth["entangled"], f)["sap"] < 0.1
    assert sap(synth["noise"], f)["sap"] < 0.1


def test_sap_linear_svc_variant(synth):
    f = synth["factors"]
    perfect = sap(synth["perfect"], f, classifier="linear_svc")["sap"]
    assert perfect > 0.3  # a 1-D linear SVC only isolates the extreme values
    assert sap(synth["rotated"], f, classifier="linear_svc")["sap"] < perfect - 0.2
    assert sap(synth["noise"], f, classifier="linear_svc")["sap"] < 0.1


def test_sap_dict_is_json_and_deterministic(synth):
    c, f = synth["perfect"][:400], synth["factors"][:400]
    out = sap(c, f, seed=5)
    assert json.loads(json.dumps(out)) == out
    assert np.asarray(out["score_matrix"]).shape == (6, 4)
    assert sap(c, f, seed=5) == out


def test_sap_rejects_unknown_classifier(synth):
    with pytest.raises(ValueError, match="classifier must be"):
        sap(synth["perfect"], synth["factors"], classifier="knn")
