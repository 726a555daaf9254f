"""lmvae.probes.disentanglement: factors from role labels, and the metric runner."""

from __future__ import annotations

import numpy as np
import pytest

from lmvae.errors import ConfigError
from lmvae.probes.disentanglement import (
    cap_values,
    disentanglement,
    factor_matrix,
    role_factors,
)


def test_role_factors_are_the_words_filling_each_role():
    texts = ["the cat sat", "a dog ran home", "the cat ran"]
    roles = [["ARG0", "ARG0", "V"], ["ARG0", "ARG0", "V", "ARGM-DIR"], ["ARG0", "ARG0", "V"]]
    factors = role_factors(roles, texts, min_count=1, min_presence=0.0)
    assert factors == {
        "ARG0": ["the cat", "a dog", "the cat"],
        "ARGM-DIR": ["-", "home", "-"],
        "V": ["sat", "ran", "ran"],
    }


def test_rare_roles_constant_roles_and_o_are_not_factors():
    texts = ["a b", "c d", "e f", "g h"]
    roles = [["ARG0", "V"], ["ARG0", "V"], ["ARG0", "O"], ["ARG0", "V"]]
    factors = role_factors(roles, texts, min_count=1, min_presence=0.5)
    # ARG0 varies (a, c, e, g); V is present in 3/4 with values b, d, h and "-"; O is skipped.
    assert set(factors) == {"ARG0", "V"}
    assert factors["V"] == ["b", "d", "-", "h"]
    # a role every sentence fills with the same word is a constant: not a factor
    assert role_factors([["V"], ["V"]], ["x", "x"], min_count=1) == {}


def test_cap_values_merges_rare_and_excess_values():
    values = ["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["-"]
    assert cap_values(values, min_count=3, max_values=5) == ["a"] * 5 + ["b"] * 4 + [
        "(other)"
    ] * 2 + ["-"]
    assert cap_values(values, min_count=1, max_values=1) == ["a"] * 5 + ["(other)"] * 6 + ["-"]


def test_factor_matrix_numbers_values_by_first_sight():
    names, m = factor_matrix({"x": ["p", "q", "p"], "y": ["u", "u", "v"]})
    assert names == ["x", "y"]
    np.testing.assert_array_equal(m, [[0, 0], [1, 0], [0, 1]])
    with pytest.raises(ConfigError, match="different lengths"):
        factor_matrix({"x": ["a"], "y": ["a", "b"]})
    with pytest.raises(ConfigError, match="no generative factors"):
        factor_matrix({})


def test_runner_scores_an_aligned_code_above_noise(synth):
    factors = {f"f{k}": synth["factors"][:, k].tolist() for k in range(4)}
    good = disentanglement(synth["perfect"], factors, seed=0)
    bad = disentanglement(synth["noise"], factors, seed=0)
    assert good["factors"] == ["f0", "f1", "f2", "f3"]
    expected = {"beta_vae", "factor_vae", "mig", "disentanglement", "completeness",
                "informativeness", "sap", "modularity", "explicitness"}  # fmt: skip
    assert set(good["scores"]) == expected
    for key in ("mig", "disentanglement", "sap", "informativeness", "beta_vae", "factor_vae"):
        assert good["scores"][key] > bad["scores"][key] + 0.2, key
    assert set(good["details"]) == {"z_diff", "z_min_var", "mig", "dci", "sap", "modularity"}


def test_runner_subset_and_unknown_metric(synth):
    factors = {"a": synth["factors"][:, 0].tolist(), "b": synth["factors"][:, 1].tolist()}
    out = disentanglement(synth["perfect"], factors, metrics=["mig"])
    assert list(out["scores"]) == ["mig"]
    with pytest.raises(ConfigError, match="unknown metric 'irs'"):
        disentanglement(synth["perfect"], factors, metrics=["irs"])
