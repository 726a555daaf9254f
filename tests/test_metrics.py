"""lmvae.metrics: reconstruction BLEU, exact match, word accuracy and active units."""

from __future__ import annotations

import pytest
import sacrebleu
import torch

from lmvae.metrics import active_units, reconstruction_metrics


def test_identical_texts_score_one():
    refs = ["the cat sat on the mat", "a dog runs in the park"]
    m = reconstruction_metrics(refs, refs)
    assert m == {"bleu": pytest.approx(1.0), "exact_match": 1.0, "word_accuracy": 1.0}


def test_exact_match_and_word_accuracy_by_hand():
    hyps = ["the cat sat on the rug", "a dog  runs", "x y"]
    refs = ["the cat sat on the mat", "a dog runs", "y x z"]
    m = reconstruction_metrics(hyps, refs)
    # exact match compares word lists, so extra whitespace does not matter
    assert m["exact_match"] == pytest.approx(1 / 3)
    # hits: 5 + 3 + 0; positions: 6 + 3 + max(2, 3)
    assert m["word_accuracy"] == pytest.approx(8 / 12)
    assert m["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score / 100)
    assert 0.0 < m["bleu"] < 1.0


def test_empty_and_mismatched_inputs():
    assert reconstruction_metrics([], []) == {"bleu": 0.0, "exact_match": 0.0, "word_accuracy": 0.0}
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        reconstruction_metrics(["a", "b"], ["a"])


def test_active_units_on_hand_made_mu():
    mu = torch.tensor(
        [
            [0.0, 1.0, 5.0, 0.00],
            [0.0, -1.0, 5.0, 0.05],
            [0.0, 1.0, 5.0, 0.00],
            [0.0, -1.0, 5.0, 0.05],
        ]
    )
    # Variances (unbiased): 0, 4/3, 0, 0.000833 -> only dim 1 is above 0.01.
    assert active_units(mu) == 1
    assert active_units(mu, threshold=0.0005) == 2
    assert active_units(mu[:1]) == 0  # one sample has no variance
