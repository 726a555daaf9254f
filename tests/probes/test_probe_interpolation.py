from __future__ import annotations

import math

import numpy as np
import pytest

from lmvae.probes.interpolation import (
    decoder_word_vectors,
    interpolate,
    load_word_vectors,
    smoothness,
    tokenize_words,
    word_movers_distance,
)

VECS = {
    "cat": np.array([0.0, 0.0]),
    "dog": np.array([3.0, 4.0]),
    "sat": np.array([1.0, 0.0]),
    "ran": np.array([1.0, 2.0]),
    "the": np.array([0.0, 1.0]),
}


def test_wmd_identical_is_zero():
    words = ["the", "cat", "sat"]
    assert word_movers_distance(words, words, VECS) == pytest.approx(0.0, abs=1e-12)


def test_wmd_one_word_is_euclidean():
    assert word_movers_distance(["cat"], ["dog"], VECS) == pytest.approx(5.0)
    assert word_movers_distance(["sat"], ["ran"], VECS) == pytest.approx(2.0)


def test_wmd_symmetric_and_permutation_invariant():
    a, b = ["the", "cat", "sat"], ["dog", "ran"]
    d = word_movers_distance(a, b, VECS)
    assert d > 0
    assert word_movers_distance(b, a, VECS) == pytest.approx(d)
    assert word_movers_distance(a[::-1], ["ran", "dog"], VECS) == pytest.approx(d)


def test_wmd_known_transport():
    # Two words onto one: each half of the mass travels its own distance.
    assert word_movers_distance(["cat", "dog"], ["sat"], VECS) == pytest.approx(
        0.5 * 1.0 + 0.5 * math.hypot(2.0, 4.0)
    )
    # Matching pairs: the optimal plan pairs cat->sat and dog->dog (cost 0.5 * 1).
    assert word_movers_distance(["cat", "dog"], ["dog", "sat"], VECS) == pytest.approx(0.5)


def test_wmd_unknown_and_empty():
    assert word_movers_distance(["cat", "zebra"], ["Cat"], VECS) == pytest.approx(0.0)
    assert word_movers_distance(["zebra"], ["cat"], VECS) == math.inf
    assert word_movers_distance([], [], VECS) == 0.0
    with pytest.raises(ValueError):
        word_movers_distance("cat", ["cat"], VECS)


def test_smoothness_known_answers():
    line = lambda x, y: abs(x - y)  # noqa: E731
    assert smoothness([0, 1, 2, 5], line) == pytest.approx(1.0)
    assert smoothness([0, 2, 1, 3], line) == pytest.approx(3 / 5)
    assert smoothness([0, 4, 0, 4], line) == pytest.approx(4 / 12)
    assert smoothness([0, 3, 0], line) == pytest.approx(0.0)
    assert smoothness([1, 1, 1], line) == 1.0
    assert math.isnan(smoothness([0, 1], lambda x, y: math.inf))
    with pytest.raises(ValueError):
        smoothness([0], line)


def test_tokenize_words():
    assert tokenize_words("It's ok, the cat sat.") == ["It's", "ok", ",", "the", "cat", "sat", "."]


def test_load_word_vectors(tmp_path):
    path = tmp_path / "vecs.txt"
    path.write_text("2 3\ncat 1 2 3\ndog 0.5 -1 2e-1\n\n", encoding="utf-8")
    vecs = load_word_vectors(path)
    assert set(vecs) == {"cat", "dog"}
    np.testing.assert_allclose(vecs["dog"], [0.5, -1.0, 0.2])
    bad = tmp_path / "bad.txt"
    bad.write_text("cat 1 2\ndog 1\n", encoding="utf-8")
    with pytest.raises(ValueError):
        load_word_vectors(bad)
    with pytest.raises(ValueError):
        load_word_vectors(tmp_path / "missing.txt")


@pytest.fixture(scope="module")
def vae(make_vae):
    return make_vae("bert", "gpt2", latent_size=8)


def test_interpolate_mechanics(vae, corpus, tmp_path):
    out = interpolate(vae, corpus[0], corpus[1], steps=4, max_new_tokens=5)
    assert out["texts"] == vae.interpolate(corpus[0], corpus[1], steps=4, max_new_tokens=5)
    assert len(out["distances"]) == 3
    assert out["path_length"] == pytest.approx(sum(out["distances"]))
    s = out["smoothness"]
    assert math.isnan(s) or 0.0 <= s <= 1.0 + 1e-9
    assert interpolate(vae, corpus[0], corpus[1], steps=4, max_new_tokens=5) == out
    slerp = interpolate(vae, corpus[0], corpus[1], steps=3, mode="slerp", max_new_tokens=5)
    assert slerp["mode"] == "slerp" and len(slerp["texts"]) == 3
    # Decoder embeddings: a word's vector is the mean of its sub-word embeddings.
    weight = vae.decoder.lm.get_input_embeddings().weight.detach().double().numpy()
    vecs = decoder_word_vectors(vae, ["cat", "cat", "."])
    ids = vae.decoder_tokenizer("cat", add_special_tokens=False)["input_ids"]
    np.testing.assert_allclose(vecs["cat"], weight[ids].mean(0), rtol=1e-6)
    # A vectors file: every word unknown -> all distances 0 -> smoothness 1 by definition.
    path = tmp_path / "v.txt"
    path.write_text("zzzunknownzzz 1 2\n", encoding="utf-8")
    filed = interpolate(vae, corpus[0], corpus[1], steps=3, vectors=path, max_new_tokens=5)
    assert len(filed["texts"]) == 3
    assert filed["smoothness"] == 1.0 and filed["path_length"] == 0.0


@pytest.mark.parametrize("kwargs", [{"steps": 1}, {"mode": "cubic"}])
def test_interpolate_bad_input(vae, kwargs):
    with pytest.raises(ValueError):
        interpolate(vae, "a b", "c d", **kwargs)
