"""lmvae.probes.properties: sentence properties and linear probes from z."""

from __future__ import annotations

import numpy as np
import pytest

from lmvae.errors import ConfigError
from lmvae.probes.properties import length_bucket, probe_properties, sentence_properties


@pytest.mark.parametrize(
    "n, expected", [(1, "<=5"), (5, "<=5"), (6, "6-7"), (7, "6-7"), (9, "8-9"), (10, ">=10")]
)
def test_length_buckets(n, expected):
    assert length_bucket(n) == expected


def test_length_bucket_custom_edges():
    assert length_bucket(3, (2, 3)) == "3"
    assert length_bucket(4, (2, 3)) == ">=4"


def test_sentence_properties_from_roles_and_user_labels():
    texts = ["the cat sat", "a dog ran home today", "birds fly"]
    roles = [["ARG0", "ARG0", "V"], ["ARG0", "ARG0", "V", "ARGM-DIR", "ARGM-TMP"], ["ARG0", "V"]]
    props = sentence_properties(texts, roles, {"topic": ["pets", "pets", "birds"]})
    assert props["length"] == ["<=5", "<=5", "<=5"]
    # Roles every sentence has (ARG0, V) say nothing and are left out.
    assert set(props) == {"length", "has_ARGM-DIR", "has_ARGM-TMP", "topic"}
    assert props["has_ARGM-TMP"] == ["no", "yes", "no"]
    assert props["topic"] == ["pets", "pets", "birds"]


def test_sentence_properties_errors():
    with pytest.raises(ConfigError, match="role-label rows"):
        sentence_properties(["a b"], [["X", "Y"], ["X"]])
    with pytest.raises(ConfigError, match="'topic' has 1 labels for 2"):
        sentence_properties(["a", "b"], labels={"topic": ["x"]})


def test_probe_reads_a_linearly_encoded_property_and_not_noise():
    rng = np.random.default_rng(0)
    n = 300
    coded = rng.integers(3, size=n)
    noise = rng.integers(2, size=n)
    codes = rng.standard_normal((n, 6))
    codes[:, 0] += 4.0 * coded  # property "coded" is linear in dim 0; "noise" is in no dim
    out = probe_properties(codes, {"coded": coded.tolist(), "noise": noise.tolist()}, seed=1)
    assert out["coded"]["accuracy"] > 0.95
    assert out["coded"]["n_classes"] == 3 and out["coded"]["n"] == n
    base = out["noise"]["majority_baseline"]
    assert base == pytest.approx(np.bincount(noise).max() / n)
    assert out["noise"]["accuracy"] < base + 0.1


def test_single_label_is_skipped_and_rare_labels_merge():
    codes = np.random.default_rng(0).standard_normal((20, 3))
    out = probe_properties(
        codes,
        {
            "same": ["x"] * 20,
            "one_rare": ["a"] * 10 + ["b"] * 9 + ["c"],
            "two_rare": ["a"] * 9 + ["b"] * 9 + ["c", "d"],
        },
    )
    assert out["same"] == {"skipped": "a single label"}
    # A lone "c" cannot be cross-validated: its row is left out.
    assert (out["one_rare"]["n_classes"], out["one_rare"]["n"]) == (2, 19)
    # Two singletons pool into one "(rare)" class of two.
    assert (out["two_rare"]["n_classes"], out["two_rare"]["n"]) == (3, 20)


def test_probe_properties_length_mismatch():
    with pytest.raises(ConfigError, match="has 2 labels for 3 codes"):
        probe_properties(np.zeros((3, 2)), {"p": ["a", "b"]})
