from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from lmvae.probes import modularity
from lmvae.probes.metrics import modularity_from_mi


def test_modularity_hand_computed():
    f = np.array(list(itertools.product([0, 1], repeat=3)))  # 3 independent uniform bits
    z1 = f[:, 0]  # MI row (log 2, 0, 0) -> 1
    z2 = 2 * f[:, 0] + f[:, 1]  # MI row (log 2, log 2, 0) -> 1 - 1 / (3 - 1) = 0.5
    z3 = f[:, 0] ^ f[:, 1] ^ f[:, 2]  # independent of every single factor: MI 0 -> 0
    codes = np.column_stack([z1, z2, z3]).astype(float)
    out = modularity(codes, f, n_bins=4, explicitness=False)
    assert out["modularity_per_code"] == pytest.approx([1.0, 0.5, 0.0], abs=1e-9)
    assert out["modularity"] == pytest.approx(0.5, abs=1e-9)
    assert "explicitness" not in out


def test_modularity_from_mi_hand_computed():
    mi = np.array([[0.4, 0.2, 0.0], [0.0, 0.0, 0.0]])
    # code 0: 1 - ((0.2/0.4)^2 + 0) / 2 = 0.875; code 1: no information -> 0
    assert modularity_from_mi(mi) == pytest.approx([0.875, 0.0])


def test_modularity_perfect_entangled(synth):
    f = synth["factors"]
    bare = modularity(synth["perfect_bare"], f)
    assert bare["modularity"] > 0.9
    assert bare["explicitness"] > 0.95
    perfect = modularity(synth["perfect"], f)
    # The mean is over all codes; the 2 pure-noise dims have no dominant factor.
    assert min(perfect["modularity_per_code"][:4]) > 0.9
    entangled = modularity(synth["entangled"], f)
    assert entangled["modularity"] < perfect["modularity"] - 0.3
    assert max(entangled["modularity_per_code"][:4]) < 0.3
    assert entangled["explicitness"] > 0.95  # a rotation keeps the factors linearly decodable
    noise = modularity(synth["noise"], f)
    assert noise["explicitness"] == pytest.approx(0.5, abs=0.07)


def test_modularity_dict_is_json_and_deterministic(synth):
    c, f = synth["rotated"][:400], synth["factors"][:400]
    out = modularity(c, f, seed=2)
    assert json.loads(json.dumps(out)) == out
    assert modularity(c, f, seed=2) == out


def test_modularity_needs_two_factors(synth):
    with pytest.raises(ValueError, match="at least 2 factors"):
        modularity(synth["perfect"], synth["factors"][:, :1])
