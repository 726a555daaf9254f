"""lmvae.probes.sts: reading pairs and correlating latent cosine with gold scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmvae.errors import ConfigError, DataError
from lmvae.probes.sts import read_sts_pairs, sts_correlation, sts_probe

PAIRS = [("a cat", "a kitten", 4.5), ("a cat", "a car", 1.0), ("a dog", "a puppy", 4.0),
         ("rain", "sun", 0.5)]  # fmt: skip


def test_read_jsonl_tsv_with_header_and_bare_csv(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n" for a, b, s in PAIRS
        )
    )
    tsv = tmp_path / "p.tsv"
    tsv.write_text("s1\ts2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in PAIRS))
    csv = tmp_path / "p.csv"
    csv.write_text("".join(f"{a},{b},{s}\n" for a, b, s in PAIRS))
    for path in (jsonl, tsv, csv):
        assert read_sts_pairs(path) == PAIRS


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("p.tsv", "s1\ts2\tscore\na\tb\tnot-a-number\nc\td\t1\ne\tf\t2\n", "not a number"),
        ("p.jsonl", '{"s1": "a", "score": 1}\n', "no 's2' field"),
        ("p.jsonl", "{oops\n", "not valid JSON"),
        ("p.tsv", "a\tb\t1\n", "at least 3 sentence pairs"),
        ("p.tsv", "a\tb\n", "expected s1, s2 and score"),
    ],
)
def test_read_errors_name_the_problem(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        read_sts_pairs(path)


def test_missing_file():
    with pytest.raises(DataError, match="not found"):
        read_sts_pairs("/nonexistent/pairs.tsv")


def test_correlation_known_answers():
    za = np.array([[1.0, 0.0]] * 4)
    angles = np.array([0.0, 0.5, 1.0, 1.5])
    zb = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # cosine falls with the angle
    up = sts_correlation(za, zb, [4.0, 3.0, 2.0, 1.0])
    assert up["spearman"] == pytest.approx(1.0)
    assert up["cosine"] == pytest.approx(np.cos(angles).tolist())
    down = sts_correlation(za, zb, [1.0, 2.0, 3.0, 4.0])
    assert down["spearman"] == pytest.approx(-1.0)
    assert np.isnan(sts_correlation(za, zb, [1.0, 1.0, 1.0, 1.0])["spearman"])


class _StubVAE:
    """Encodes each sentence to a fixed vector: the probe must only use ``encode``."""

    latent_size = 2
    table = {"a cat": [1, 0], "a kitten": [1, 0], "a car": [0, 1], "a dog": [1, 1],
             "a puppy": [1, 0.8], "rain": [1, 0], "sun": [-1, 0]}  # fmt: skip

    def encode(self, texts, batch_size=64):
        return torch.tensor([self.table[t] for t in texts], dtype=torch.float32)


def test_sts_probe_uses_encode_and_ranks_pairs():
    out = sts_probe(_StubVAE(), PAIRS)
    assert out["n"] == 4
    assert out["spearman"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="at least 3"):
        sts_probe(_StubVAE(), PAIRS[:2])
