"""lmvae.evaluation's pure parts and lmvae.metrics' text figures: known answers for the loop and
diversity measures and the EOS-rate rule of decoding_figures (the mutual-information estimator
is lmvae.probes.usage's, tested there)."""

from __future__ import annotations

import pytest
import torch

from lmvae.evaluation import decoding_figures
from lmvae.metrics import distinct_n, loop_rate, loops


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a a a b", True),  # a word three times in a row
        ("the cat the cat the", True),  # the 3-gram "the cat the" twice
        ("the cat sat", False),
        ("a a b a a", False),  # a word twice in a row is not a loop
        ("the cat sat on the mat", False),  # a word again, but no 3-gram again
        ("", False),
    ],
)
def test_loops_known_answers(text, expected):
    assert loops(text) is expected


def test_loop_rate():
    assert loop_rate(["a a a b", "the cat sat", "the cat the cat the", "x"]) == 0.5
    assert loop_rate([]) == 0.0


def test_distinct_n_known_answers():
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["a b", "a b"], 2) == 0.5  # n-grams are counted over all texts
    assert distinct_n(["a b c"], 1) == 1.0
    assert distinct_n(["a", ""], 2) == 0.0  # no bigrams at all


@pytest.fixture(scope="module")
def vae(make_vae):
    return make_vae("bert", "gpt2")


def _ids(vae, text):
    return vae.decoder_tokenizer(text, add_special_tokens=False)["input_ids"]


def test_decoding_figures_eos_rate_rule(vae):
    short, long = "the cat sat", "a dog runs in the park"  # 3 and 6 tokens
    refs, max_new = [short, long], 5  # only the short one fits with its EOS (3 + 1 <= 5)
    assert len(_ids(vae, short)) == 3 and len(_ids(vae, long)) == 6

    ended = decoding_figures(vae, [_ids(vae, short), _ids(vae, "a dog")], refs, max_new)
    assert ended["eos_rate"] == 1.0  # the long reference's row is not counted
    assert ended["exact_match"] == 0.5
    assert ended["loop_rate"] == 0.0 and ended["reference_loop_rate"] == 0.0

    # A row as long as max_new ran out of room: no EOS, whatever the long reference's row does.
    cut = _ids(vae, "the cat the cat the")
    assert len(cut) == max_new
    full = decoding_figures(vae, [cut, _ids(vae, "a dog")], refs, max_new)
    assert full["eos_rate"] == 0.0
    assert full["loop_rate"] == 0.5 and full["exact_match"] == 0.0

    # No reference fits: nothing to count, and the rate is 0, not a division by zero.
    none = decoding_figures(vae, [_ids(vae, "a dog")], [long], max_new)
    assert none["eos_rate"] == 0.0


@pytest.mark.parametrize("name", ["gpt2", "gemma", "gemma2", "cohere", "granite"])
@pytest.mark.parametrize("eos", [True, False])
def test_decoder_nll_is_the_lms_own_without_its_full_logits(make_vae, name, eos):
    """decoder_nll goes through the trunk and the chunked head loss (no (B, T, V) logits), and
    gives the LM's own summed cross-entropy of [BOS] x [EOS] (or without EOS), head scaling
    and soft-capping included, on a padded batch."""
    import torch.nn.functional as F

    from lmvae.evaluation import decoder_nll

    vae = make_vae("bert", name).eval()
    texts = ["the cat sat on the mat near the fire", "a dog runs"]
    nll, counts = decoder_nll(vae, texts, eos=eos)
    for i, text in enumerate(texts):
        row = vae.codec.decoder_rows([text])[0]
        seq = torch.tensor([[vae.codec.bos_id, *row, vae.eos_id]])
        with torch.no_grad():
            logits = vae.decoder.lm(input_ids=seq).logits[0, :-1].float()
        gold = seq[0, 1:] if eos else seq[0, 1:-1]
        expected = F.cross_entropy(logits[: len(gold)], gold, reduction="sum")
        torch.testing.assert_close(nll[i], expected, atol=1e-4, rtol=1e-4)
        assert counts[i] == len(gold)
