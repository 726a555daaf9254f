"""lmvae.generation: greedy, sampling and beam search, on real tiny decoders and on scripted
stand-ins whose best sequences are known exactly."""

from __future__ import annotations

import itertools
import math
import types

import pytest
import torch

from lmvae.decoder import DecodingState
from lmvae.errors import ConfigError
from lmvae.generation import GenerationConfig, filter_logits, generate

# -- scripted stand-ins for LatentDecoder -------------------------------------------------------


class _History:
    """A fake cache: the tokens fed so far per row, reordered like a real cache."""

    def __init__(self, batch):
        self.tokens = torch.empty(batch, 0, dtype=torch.long)

    def reorder_cache(self, index):
        self.tokens = self.tokens.index_select(0, index)


class ScriptedDecoder:
    """Row r's step-t logits put all mass on script[r][t]; records every fed token."""

    def __init__(self, script, vocab=6, max_length=10):
        self.script = script
        self.vocab = vocab
        self.config = types.SimpleNamespace(max_length=max_length)
        self.steps = 0

    def start(self, z, length=None):
        b = z.shape[0]
        return DecodingState(_History(b), torch.ones(b, 1, dtype=torch.long), None, 0)

    def step(self, input_ids, state):
        state.cache.tokens = torch.cat([state.cache.tokens, input_ids], 1)
        logits = torch.full((input_ids.shape[0], self.vocab), -20.0)
        for r, row in enumerate(self.script):
            logits[r, row[min(state.position, len(row) - 1)]] = 20.0
        state.position += 1
        self.steps += 1
        return logits


class BigramDecoder:
    """Next-token logits depend on the last two tokens of the row's history (kept in the fake
    cache, so beam reordering matters) plus the row's z, so every sequence's exact log-prob can
    be enumerated."""

    def __init__(self, vocab=5, max_length=3, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.vocab = vocab
        self.table = torch.randn(vocab + 1, vocab, generator=gen) * 2  # +1 row for BOS
        self.table2 = torch.randn(vocab + 1, vocab, generator=gen)
        self.config = types.SimpleNamespace(max_length=max_length)

    def start(self, z, length=None):
        b = z.shape[0]
        state = DecodingState(_History(b), torch.ones(b, 1, dtype=torch.long), None, 0)
        state.embed_offset = z.clone()  # reordered by beam search like a real offset
        return state

    def _logits(self, history, z_row):
        prev2 = history[-2] if len(history) > 1 else history[-1]
        return self.table[history[-1]] + self.table2[prev2] + z_row[: self.vocab]

    def step(self, input_ids, state):
        state.cache.tokens = torch.cat([state.cache.tokens, input_ids], 1)
        state.position += 1
        rows = state.cache.tokens.tolist()
        return torch.stack([self._logits(h, state.embed_offset[r]) for r, h in enumerate(rows)])

    def logp(self, z_row, seq, bos, eos):
        total, history = 0.0, [bos]
        for tok in seq:
            total += float(torch.log_softmax(self._logits(history, z_row), -1)[tok])
            history.append(tok)
        return total

    def best(self, z_row, bos, eos, max_new):
        """Exhaustive search: the most likely sequence (an EOS ends it) and its log-prob."""
        best = (-math.inf, None)
        for n in range(1, max_new + 1):
            for seq in itertools.product(range(self.vocab), repeat=n):
                if eos in seq[:-1] or (n < max_new and seq[-1] != eos):
                    continue
                best = max(best, (self.logp(z_row, seq, bos, eos), list(seq)))
        return best


def reference_beam(next_logp, k, max_new, eos, length_penalty):
    """Plain-Python beam search with lmvae's documented rules: hypotheses are ranked by
    total / length ** length_penalty (EOS counted), finished ones keep their score and compete
    for the k places, and the best normalised hypothesis wins.  next_logp(prefix) -> (V,)."""
    beams = [([], 0.0, False)]
    for _ in range(max_new):
        candidates = []
        for seq, score, done in beams:
            if done:
                candidates.append((seq, score, True))
                continue
            lp = next_logp(seq)
            for tok in range(lp.shape[0]):
                candidates.append((seq + [tok], score + float(lp[tok]), tok == eos))

        def rank(c):
            return c[1] / max(len(c[0]), 1) ** length_penalty

        candidates.sort(key=rank, reverse=True)
        beams = candidates[:k]
        if all(done for _, _, done in beams):
            break
    seq = max(beams, key=lambda c: c[1] / max(len(c[0]), 1) ** length_penalty)[0]
    return seq[: seq.index(eos)] if eos in seq else seq


# -- filter_logits -------------------------------------------------------------------------------


def test_filter_top_k_known_answer():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0], [0.0, -1.0, 5.0, 5.5]])
    out = filter_logits(logits, top_k=2, top_p=1.0)
    keep = torch.isfinite(out)
    assert keep.tolist() == [[False, True, True, False], [False, False, True, True]]
    torch.testing.assert_close(out[keep], logits[keep])
    assert torch.equal(filter_logits(logits, top_k=0, top_p=1.0), logits)
    assert torch.equal(filter_logits(logits, top_k=4, top_p=1.0), logits)


def test_filter_top_p_known_answer():
    probs = torch.tensor([[0.1, 0.5, 0.15, 0.25], [0.97, 0.01, 0.01, 0.01]])
    logits = probs.log()
    # Row 0 sorted: 0.5, 0.25, 0.15, 0.1 -> 0.5 + 0.25 = 0.75 reaches 0.7: keep two.
    out = filter_logits(logits, top_k=0, top_p=0.7)
    assert torch.isfinite(out).tolist() == [[False, True, False, True], [True, False, False, False]]
    # p just above 0.75 needs the third token of row 0.
    out = filter_logits(logits, top_k=0, top_p=0.8)
    assert torch.isfinite(out)[0].tolist() == [False, True, True, True]
    # Exactly on the boundary (dyadic probabilities are exact in float32): 0.5 + 0.25 reaches
    # 0.75, so the third token is not needed.
    exact = torch.tensor([[0.125, 0.5, 0.125, 0.25]]).log()
    assert torch.isfinite(filter_logits(exact, 0, 0.75)).tolist() == [[False, True, False, True]]
    # The top token always survives, however small p is.
    out = filter_logits(logits, top_k=0, top_p=0.01)
    assert torch.isfinite(out).sum(1).tolist() == [1, 1]


def test_filter_top_k_then_top_p():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    out = filter_logits(logits, top_k=3, top_p=0.6)
    # top-3 renormalised: softmax(1, 2, 3) = .09, .245, .665 -> .665 >= .6: only the best stays
    assert torch.isfinite(out).tolist() == [[False, False, False, True]]


def test_generation_config_validation():
    for bad, message in [
        ({"strategy": "nucleus"}, "unknown decoding strategy"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"num_beams": 0}, "num_beams"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ]:
        with pytest.raises(ConfigError, match=message):
            GenerationConfig(**bad).validate()


# -- EOS and length on scripted decoders ---------------------------------------------------------

EOS, BOS = 0, 5


def test_eos_at_step_t_gives_length_t_and_later_tokens_are_dropped():
    script = [[1, 2, EOS, 3, 4], [3, 3, 3, 3, 3, EOS], [EOS], [1, 2, 3, 4]]
    dec = ScriptedDecoder(script)
    out = generate(dec, torch.zeros(4, 2), BOS, EOS, GenerationConfig(max_new_tokens=7))
    assert out == [[1, 2], [3, 3, 3, 3, 3], [], [1, 2, 3, 4, 4, 4, 4]]
    assert [len(r) for r in out] == [2, 5, 0, 7]


def test_finished_rows_are_fed_eos_and_decoding_stops_early():
    dec = ScriptedDecoder([[1, EOS, 2, 2, 2], [EOS, 3, 3, 3, 3]])
    state_tokens = []
    original = dec.step

    def spy(input_ids, state):
        state_tokens.append(input_ids[:, 0].tolist())
        return original(input_ids, state)

    dec.step = spy
    out = generate(dec, torch.zeros(2, 2), BOS, EOS, GenerationConfig(max_new_tokens=40))
    assert out == [[1], []]
    assert state_tokens[0] == [BOS, BOS]
    assert state_tokens[1] == [1, EOS]
    assert all(row == [EOS, EOS] for row in state_tokens[2:])  # finished rows only see EOS
    assert dec.steps < 40  # every row finished: no decoding up to max_new_tokens


def test_on_cpu_decoding_stops_at_the_step_the_last_row_finishes():
    dec = ScriptedDecoder([[1, EOS, 2, 2, 2, 2], [3, 3, 3, 3, EOS, 3]])
    out = generate(dec, torch.zeros(2, 2), BOS, EOS, GenerationConfig(max_new_tokens=40))
    assert out == [[1], [3, 3, 3, 3]]
    assert dec.steps == 5  # no step after the one that ended the last row


def test_default_max_length_comes_from_the_decoder_config():
    dec = ScriptedDecoder([[1]], max_length=6)
    assert generate(dec, torch.zeros(1, 2), BOS, EOS, GenerationConfig()) == [[1] * 6]


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_scripted_outputs_never_exceed_max_new_tokens(strategy):
    dec = BigramDecoder(vocab=5, max_length=50)
    dec.table[:, EOS] = -1e4  # never ends on its own
    z = torch.zeros(3, 5)
    for max_new in (1, 3, 9):
        cfg = GenerationConfig(strategy, max_new_tokens=max_new, num_beams=3)
        out = generate(dec, z, BOS, EOS, cfg, torch.Generator().manual_seed(0))
        assert [len(r) for r in out] == [max_new] * 3


# -- beam search on an enumerable model ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_wide_beam_search_finds_the_exact_best_sequence(seed):
    vocab, max_new = 5, 3
    dec = BigramDecoder(vocab=vocab, max_length=max_new, seed=seed)
    z = torch.randn(3, vocab, generator=torch.Generator().manual_seed(100 + seed))
    # With vocab ** (max_new - 1) beams nothing is ever pruned: beam search is exhaustive.
    cfg = GenerationConfig("beam", max_new_tokens=max_new, num_beams=vocab ** (max_new - 1))
    cfg.length_penalty = 0.0
    out = generate(dec, z, BOS, EOS, cfg)
    for r in range(3):
        best_lp, best_seq = dec.best(z[r], BOS, EOS, max_new)
        found = out[r] + ([EOS] if len(out[r]) < max_new else [])
        assert dec.logp(z[r], found, BOS, EOS) == pytest.approx(best_lp, abs=1e-5)
        assert found == best_seq


@pytest.mark.parametrize("seed", range(3))
def test_length_penalty_one_ranks_by_log_prob_per_token(seed):
    """Exhaustive beams: lp=0 maximises the total log-prob, lp=1 the per-token mean (EOS
    counted as a token), each over every possible sequence."""
    max_new = 3
    dec = BigramDecoder(vocab=5, max_length=max_new, seed=10 + seed)
    dec.table[:, EOS] += 1.5  # make short sequences competitive
    z = torch.zeros(1, 5)

    def full(seq):
        return seq + ([EOS] if len(seq) < max_new else [])

    everything = [
        list(s)
        for n in range(1, max_new + 1)
        for s in itertools.product(range(5), repeat=n)
        if EOS not in s[:-1] and (n == max_new or s[-1] == EOS)
    ]
    total = {tuple(s): dec.logp(z[0], s, BOS, EOS) for s in everything}
    best_total = max(total.values())
    best_mean = max(v / len(s) for s, v in total.items())
    for lp, target in ((0.0, best_total), (1.0, best_mean)):
        cfg = GenerationConfig("beam", max_new_tokens=max_new, num_beams=25, length_penalty=lp)
        seq = full(generate(dec, z, BOS, EOS, cfg)[0])
        score = total[tuple(seq)] / (len(seq) if lp else 1)
        assert score == pytest.approx(target, abs=1e-5)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("seed", range(3))
def test_narrow_beam_matches_the_reference_on_a_scripted_model(seed, length_penalty):
    vocab, max_new, k = 5, 5, 3
    dec = BigramDecoder(vocab=vocab, max_length=max_new, seed=20 + seed)
    dec.table[:, EOS] += 1.0
    z = torch.randn(2, vocab, generator=torch.Generator().manual_seed(seed))
    cfg = GenerationConfig(
        "beam", max_new_tokens=max_new, num_beams=k, length_penalty=length_penalty
    )
    out = generate(dec, z, BOS, EOS, cfg)
    for r in range(2):

        def next_logp(prefix, r=r):
            return torch.log_softmax(dec._logits([BOS, *prefix], z[r]), -1)

        assert out[r] == reference_beam(next_logp, k, max_new, EOS, length_penalty)


# -- real tiny decoders ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vaes(make_vae):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = make_vae("bert", name).eval()
        return cache[name]

    return get


@torch.no_grad()
def _seq_logprob(vae, z, rows, max_new):
    """Teacher-forced log-prob of each decoded row (+ EOS when it ended before max_new)."""
    out = []
    for r, row in enumerate(rows):
        target = row + ([vae.eos_id] if len(row) < max_new else [])
        inp = torch.tensor([[vae.bos_id] + target[:-1]])
        loss = vae.decoder.token_loss(
            z[r : r + 1], inp, torch.ones_like(inp), torch.tensor([target])
        )
        out.append(-float(loss.nll[0]))
    return out


DECODERS = ["gpt2", "llama-gqa", "gemma", "phi"]


@pytest.mark.parametrize("name", DECODERS)
def test_greedy_equals_beam_with_one_beam(vaes, name):
    vae = vaes(name)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)) * 2
    greedy = generate(vae.decoder, z, vae.bos_id, vae.eos_id, GenerationConfig(max_new_tokens=10))
    beam1 = GenerationConfig("beam", max_new_tokens=10, num_beams=1)
    assert generate(vae.decoder, z, vae.bos_id, vae.eos_id, beam1) == greedy


@pytest.mark.parametrize("name", DECODERS)
def test_beam_search_scores_at_least_greedy(vaes, name):
    """Within two tokens the greedy path is always among the beams, so the beam's total log-prob
    cannot be lower (beyond that, beam search may legitimately prune the greedy path)."""
    vae = vaes(name)
    max_new = 2
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(1)) * 2
    greedy = generate(vae.decoder, z, vae.bos_id, vae.eos_id, GenerationConfig(max_new_tokens=2))
    cfg = GenerationConfig("beam", max_new_tokens=max_new, num_beams=4, length_penalty=0.0)
    beam = generate(vae.decoder, z, vae.bos_id, vae.eos_id, cfg)
    with torch.no_grad():
        lg = _seq_logprob(vae, z, greedy, max_new)
        lb = _seq_logprob(vae, z, beam, max_new)
    assert all(b >= g - 1e-4 for b, g in zip(lb, lg, strict=True)), (lb, lg)
    assert any(b > g + 1e-3 for b, g in zip(lb, lg, strict=True))  # and it does find better


def test_exhaustive_beam_on_a_real_decoder(vaes):
    """num_beams = vocabulary size and two tokens: the beam result is the best of all V^2."""
    vae = vaes("llama-gqa")
    dec = vae.decoder
    vocab = len(vae.decoder_tokenizer)
    z = torch.randn(1, 8, generator=torch.Generator().manual_seed(2)) * 2
    cfg = GenerationConfig("beam", max_new_tokens=2, num_beams=vocab, length_penalty=0.0)
    found = generate(dec, z, vae.bos_id, vae.eos_id, cfg)[0]
    with torch.no_grad():
        first = torch.log_softmax(dec.step(torch.tensor([[vae.bos_id]]), dec.start(z)), -1)[0]
        state = dec.start(z.expand(vocab, -1))
        dec.step(torch.full((vocab, 1), vae.bos_id), state)
        second = torch.log_softmax(dec.step(torch.arange(vocab)[:, None], state), -1)
    scores = first[:, None] + second  # (first token, second token)
    scores[vae.eos_id] = -math.inf
    best2 = scores.max()
    best = max(float(best2), float(first[vae.eos_id]))
    assert _seq_logprob(vae, z, [found], 2)[0] == pytest.approx(best, abs=1e-4)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
@pytest.mark.parametrize("name", ["gpt2", "gemma"])
def test_beam_matches_the_reference_on_a_real_decoder(vaes, name, length_penalty):
    """Several steps with pruning: the batched, cache-reordering beam search gives the same
    sequence as a plain search that re-runs the decoder on every prefix."""
    vae = vaes(name)
    dec = vae.decoder
    max_new, k = 4, 3
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(5)) * 2
    cfg = GenerationConfig(
        "beam", max_new_tokens=max_new, num_beams=k, length_penalty=length_penalty
    )
    out = generate(dec, z, vae.bos_id, vae.eos_id, cfg)
    for r in range(2):

        @torch.no_grad()
        def next_logp(prefix, r=r):
            ids = torch.tensor([[vae.bos_id, *prefix]])
            hidden = dec.hidden_states(z[r : r + 1], ids, torch.ones_like(ids))
            return torch.log_softmax(dec.logits(hidden[0, -1]).float(), -1)

        assert out[r] == reference_beam(next_logp, k, max_new, vae.eos_id, length_penalty)


@pytest.mark.parametrize("name", ["gpt2", "qwen2"])
def test_sampling_is_reproducible_with_a_seeded_generator(vaes, name):
    vae = vaes(name)
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    cfg = GenerationConfig("sample", max_new_tokens=8)

    def run(seed):
        return generate(
            vae.decoder, z, vae.bos_id, vae.eos_id, cfg, torch.Generator().manual_seed(seed)
        )

    assert run(5) == run(5)
    assert any(run(s) != run(5) for s in (6, 7, 8))


@pytest.mark.parametrize("name", ["gpt2", "mistral"])
def test_top_k_one_sampling_equals_greedy(vaes, name):
    vae = vaes(name)
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(3))
    greedy = generate(vae.decoder, z, vae.bos_id, vae.eos_id, GenerationConfig(max_new_tokens=8))
    for temperature in (1.0, 3.0):
        cfg = GenerationConfig("sample", max_new_tokens=8, top_k=1, temperature=temperature)
        out = generate(
            vae.decoder, z, vae.bos_id, vae.eos_id, cfg, torch.Generator().manual_seed(1)
        )
        assert out == greedy


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_real_outputs_never_exceed_max_new_tokens(vaes, strategy):
    vae = vaes("llama-gqa")
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    for max_new in (1, 5):
        cfg = GenerationConfig(strategy, max_new_tokens=max_new, num_beams=3)
        out = generate(
            vae.decoder, z, vae.bos_id, vae.eos_id, cfg, torch.Generator().manual_seed(0)
        )
        assert len(out) == 3 and all(len(r) <= max_new for r in out)
        assert all(vae.eos_id not in r for r in out)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_bf16_decoding_restores_the_fp32_weights(vaes, strategy):
    vae = vaes("gpt2")
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0)) * 2
    weights = {n: (p.dtype, p.data_ptr()) for n, p in vae.decoder.lm.named_parameters()}
    cfg = GenerationConfig(strategy, max_new_tokens=6, num_beams=2, bf16=True)
    rows = generate(vae.decoder, z, vae.bos_id, vae.eos_id, cfg)
    assert len(rows) == 3 and all(len(r) <= 6 for r in rows)
    assert {n: (p.dtype, p.data_ptr()) for n, p in vae.decoder.lm.named_parameters()} == weights
    texts = vae.decode(z, strategy=strategy, max_new_tokens=6, num_beams=2, bf16=True)
    assert len(texts) == 3
    assert all(p.dtype == torch.float32 for p in vae.decoder.lm.parameters())
