"""lmvae.fastpath: the lean forward gives the transformers forward's losses, gradients and
decoded tokens, for each family it covers, and stays out of the way where it does not apply."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from support import CORPUS, DECODER_IDS

from lmvae import fastpath
from lmvae.data import collate_decoder, tokenize_decoder
from lmvae.generation import GenerationConfig, generate
from lmvae.precision import frozen_weights_in

#: Decoders the lean forward covers; the other (Mistral with an 8-token window) must run
#: through transformers.  "phi3-partial" (fused maps, rotary on half of each head), "gemma2"
#: (soft-capped attention and logits, extra norms), "qwen3" (query / key head norms) and
#: "gemma3" (head norms, a rotary per layer type) are built for these tests only.
EXTRA = ["phi3-partial", "gemma2", "qwen3", "gemma3"]
COVERED = {"gpt2", "llama-gqa", "llama-headdim", "qwen2", "gemma", "phi", *EXTRA}
VARIANTS = {
    "prefix": {},
    "embed-rank": {"decoder_embed_injection": True, "decoder_rank": 8},
    "memory": {"decoder_injection": "memory"},
    "per-position": {"decoder_injection": "per_position"},
}


@pytest.fixture(scope="module")
def vaes(make_vae):
    cache = {}

    def get(name, variant="prefix"):
        key = (name, variant)
        if key not in cache:
            vae = make_vae("bert", name, decoder_num_slots=3, **VARIANTS[variant])
            # Lively projections, so a wrong slot or offset shows in every figure.
            torch.manual_seed(1)
            for p in vae.decoder.injector.parameters():
                torch.nn.init.normal_(p, std=0.3)
            vae.eval()
            cache[key] = vae
        return cache[key]

    return get


def _batch(vae, n=5):
    rows = tokenize_decoder(vae.decoder_tokenizer, CORPUS[:n], 16)
    return collate_decoder(rows, vae.bos_id, vae.eos_id, vae.pad_id)


def _loss_and_grads(vae, batch, z, fast: bool):
    dec = vae.decoder
    dec.fast_path = fast
    try:
        z = z.clone().requires_grad_(True)
        params = [p for p in dec.injector.parameters()]
        out = dec.token_loss(z, batch["input_ids"], batch["attention_mask"], batch["labels"])
        grads = torch.autograd.grad(out.nll.sum(), [z, *params])
    finally:
        dec.fast_path = True
    return out, grads


@pytest.mark.parametrize("name", [*DECODER_IDS, *EXTRA])
def test_covered_families(vaes, name):
    assert (vaes(name).decoder.lean_trunk() is not None) == (name in COVERED)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", sorted(COVERED))
def test_teacher_forced_loss_and_gradients_match_transformers(vaes, name, variant):
    vae = vaes(name, variant)
    batch = _batch(vae)
    assert (batch["attention_mask"] == 0).any()  # padding is part of the test
    z = torch.randn(batch["input_ids"].shape[0], 8, generator=torch.Generator().manual_seed(0))
    ref, ref_grads = _loss_and_grads(vae, batch, z, fast=False)
    out, grads = _loss_and_grads(vae, batch, z, fast=True)
    torch.testing.assert_close(out.nll, ref.nll, rtol=1e-5, atol=1e-4)
    assert torch.equal(out.num_tokens, ref.num_tokens)
    assert torch.equal(out.num_correct, ref.num_correct)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(COVERED))
def test_bf16_loss_close_to_transformers_bf16(vaes, name):
    vae = vaes(name)
    batch = _batch(vae)
    z = torch.randn(batch["input_ids"].shape[0], 8, generator=torch.Generator().manual_seed(2))
    with frozen_weights_in(vae.decoder.lm, torch.bfloat16):
        ref, _ = _loss_and_grads(vae, batch, z, fast=False)
        out, grads = _loss_and_grads(vae, batch, z, fast=True)
    assert vae.decoder.lean_trunk(torch.bfloat16) is not None
    torch.testing.assert_close(out.nll, ref.nll, rtol=2e-2, atol=0.2)
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
@pytest.mark.parametrize("variant", ["prefix", "memory", "per-position"])
@pytest.mark.parametrize("name", sorted(COVERED))
def test_decoding_matches_transformers(vaes, name, variant, strategy):
    vae = vaes(name, variant)
    dec = vae.decoder
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3)) * 2
    config = GenerationConfig(strategy=strategy, num_beams=3, max_new_tokens=8)
    eos = -1 if strategy == "greedy" else vae.eos_id  # greedy: all 8 steps, every step compared
    outputs = []
    for fast in (False, True):
        dec.fast_path = fast
        outputs.append(generate(dec, z, vae.bos_id, eos, config))
    dec.fast_path = True
    assert outputs[0] == outputs[1]
    assert len({tuple(row) for row in outputs[1]}) > 1  # z is live: not one output for all


@pytest.mark.parametrize("name", sorted(COVERED))
def test_decoding_step_logits_match(vaes, name):
    dec = vaes(name).decoder
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    tokens = torch.randint(3, 40, (3, 6), generator=torch.Generator().manual_seed(5))
    logits = []
    with torch.no_grad():
        for fast in (False, True):
            dec.fast_path = fast
            state = dec.start(z)
            assert isinstance(state.cache, fastpath.SlotCache) == fast
            logits.append(torch.stack([dec.step(tokens[:, t : t + 1], state) for t in range(6)]))
    dec.fast_path = True
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-4, atol=1e-4)


def test_not_used_where_it_does_not_apply(vaes, make_vae):
    dec = vaes("gpt2").decoder
    dec.fast_path = False
    assert dec.lean_trunk() is None
    dec.fast_path = True
    trains = make_vae("bert", "gpt2").decoder
    trains.lm.transformer.h[-1].mlp.c_fc.weight.requires_grad_(True)
    assert trains.lean_trunk() is None


def _one_layer_trunk(model_type: str, positions: int = 64, **config):
    """The lean trunk (or None) of a one-layer, 32-wide random model of ``model_type``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    sizes = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2}
    config = AutoConfig.for_model(model_type, vocab_size=32, num_hidden_layers=1, **sizes, **config)
    return fastpath.lean_trunk(AutoModelForCausalLM.from_config(config), torch.float32, positions)


@pytest.mark.parametrize("qk_layernorm", [False, True])
def test_phi_with_query_key_norms_is_left_to_transformers(qk_layernorm):
    assert (_one_layer_trunk("phi", qk_layernorm=qk_layernorm) is None) == qk_layernorm


@pytest.mark.parametrize("window", [40, 39])
def test_a_sliding_window_is_covered_when_no_query_reaches_past_it(window):
    trunk = _one_layer_trunk("mistral", 40, num_key_value_heads=1, sliding_window=window)
    assert (trunk is None) == (window < 40)


def test_decoding_past_the_window_runs_through_transformers(vaes, monkeypatch):
    vae = vaes("gemma3")  # a 128-position window: 3 slots + 64 max length fit, 200 tokens not
    dec = vae.decoder
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    long = GenerationConfig(max_new_tokens=200)
    never = -1  # an end token never produced: every row runs the 200 steps
    lean_steps = []
    monkeypatch.setattr(fastpath, "lean_step", lambda *a: lean_steps.append(1) or None)
    tokens = generate(dec, z, vae.bos_id, never, long)
    assert not lean_steps and [len(t) for t in tokens] == [200, 200]
    dec.fast_path = False
    try:
        assert generate(dec, z, vae.bos_id, never, long) == tokens
    finally:
        dec.fast_path = True


def test_transformers_forward_not_called_on_the_lean_path(vaes, monkeypatch):
    vae = vaes("gpt2")
    batch = _batch(vae)

    def forbidden(*args, **kwargs):
        raise AssertionError("the transformers forward ran")

    monkeypatch.setattr(vae.decoder, "_run", forbidden)
    z = torch.zeros(batch["input_ids"].shape[0], 8)
    vae.decoder.token_loss(z, batch["input_ids"], batch["attention_mask"], batch["labels"])
    generate(vae.decoder, z, vae.bos_id, vae.eos_id, GenerationConfig(max_new_tokens=3))


def test_token_layout_rows_and_round_trip():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    layout = fastpath.TokenLayout.from_mask(mask, num_slots=2, dtype=torch.float32)
    assert layout.count == 8
    assert layout.index.shape[0] == fastpath.padded_rows(8)
    assert layout.positions[:8].tolist() == [0, 1, 2, 0, 0, 1, 2, 3]
    assert layout.rows[:8].tolist() == [0, 0, 0, 1, 2, 2, 2, 2]
    padded = torch.arange(12.0).view(3, 4, 1) + 1
    flat = layout.to_flat(padded)
    assert flat[:8, 0].tolist() == [1, 2, 3, 5, 9, 10, 11, 12]
    # Back to the padded positions: real ones get their row, padding any row (masked).
    back = flat.index_select(0, layout.gather).view(3, 4)
    assert torch.equal(back * mask, padded[..., 0] * mask)
    # Flat rows from padded positions; the rows past count read the extra zero row.
    with_zero = torch.cat([padded.view(12, 1), torch.zeros(1, 1)])
    assert torch.equal(with_zero.index_select(0, layout.scatter)[:8], flat[:8])
    assert not with_zero.index_select(0, layout.scatter)[8:].any()
    assert layout.query_mask.view(3, 4).tolist() == mask.float().tolist()
    # The additive mask: slots always, real tokens causally, padding never.
    allowed = layout.mask[:, 0] == 0
    assert allowed[:, :, :2].all()
    assert allowed[0, 2, 2:].tolist() == [True, True, True, False]
    assert allowed[0, 0, 2:].tolist() == [True, False, False, False]


def test_padded_rows_bound_the_shapes_oneDNN_compiles():
    sizes = [fastpath.padded_rows(n) for n in range(1, 1025)]
    for n, size in enumerate(sizes, 1):
        assert size >= n and size % fastpath.ROW_MULTIPLE == 0
        assert size - n < max(2 * fastpath.ROW_MULTIPLE, n / 4)  # past 128 rows, under 25 %
    assert set(sizes[:32]) == {32}  # decoding batches up to 32 share one kernel
    assert sizes[32:128] == [16 * -(-n // 16) for n in range(33, 129)]
    # A training run's token counts (a few hundred) fall in a handful of sizes.
    assert sorted({fastpath.padded_rows(n) for n in range(160, 321)}) == [160, 192, 224, 256, 320]
    assert len(set(sizes)) < 30


@pytest.mark.skipif(not fastpath.packing_available(), reason="no oneDNN bf16 packing here")
@pytest.mark.parametrize("rows", [1, 16, 37])
def test_packed_linear_values_and_input_gradient(rows):
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(24, 40, generator=gen), torch.randn(24, generator=gen)
    linear = fastpath.FrozenLinear(weight, bias, torch.bfloat16)
    assert linear.packed is not None
    x = torch.randn(rows, 40, generator=gen).bfloat16().requires_grad_(True)
    y = linear(x)
    want = F.linear(x.detach().float(), weight.bfloat16().float(), bias.bfloat16().float())
    torch.testing.assert_close(y.float(), want, rtol=2e-2, atol=5e-2)
    grad = torch.randn(rows, 24, generator=gen).bfloat16()
    (got,) = torch.autograd.grad(y, x, grad)
    torch.testing.assert_close(
        got.float(), grad.float() @ weight.bfloat16().float(), rtol=2e-2, atol=5e-2
    )


def test_label_conditioned_loss_matches_transformers(make_vae):
    """Word labels become per-position input offsets; the lean forward adds them as the
    transformers path does."""
    texts = CORPUS[:4]
    labels = [["A" if i % 2 else "B" for i, _ in enumerate(t.split())] for t in texts]
    ann = {"labels": ["A", "B"], "encoder": False, "decoder": True}
    vae = make_vae("bert", "llama-gqa", annotations=ann, decoder_max_length=16).eval()
    with torch.no_grad():
        weight = vae.decoder.label_embed.weight
        weight[1:].copy_(torch.randn(weight[1:].shape, generator=torch.Generator().manual_seed(0)))
    batch = vae.decoder_inputs(texts, labels)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    nll = []
    for fast in (False, True):
        vae.decoder.fast_path = fast
        out = vae.decoder.token_loss(
            z, batch["input_ids"], batch["attention_mask"], batch["labels"], batch["label_ids"]
        )
        nll.append(out.nll)
    vae.decoder.fast_path = True
    torch.testing.assert_close(nll[1], nll[0], rtol=1e-5, atol=1e-4)
    plain = vae.decoder.token_loss(z, batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert (plain.nll - nll[1]).abs().max() > 1e-2  # the labels do act


def test_a_model_with_packed_weights_copies_and_pickles(make_vae):
    """Packed oneDNN weights cannot be copied; a copy drops them and rebuilds on first use."""
    vae = make_vae("bert", "gpt2").eval()
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    config = GenerationConfig(bf16=True, max_new_tokens=6)
    before = generate(vae.decoder, z, vae.bos_id, vae.eos_id, config)  # builds packed weights
    twin = copy.deepcopy(vae)
    assert generate(twin.decoder, z, twin.bos_id, twin.eos_id, config) == before
    restored = pickle.loads(pickle.dumps(vae.decoder))
    assert generate(restored, z, vae.bos_id, vae.eos_id, config) == before


def test_packed_weights_built_under_inference_mode_still_train(make_vae):
    vae = make_vae("bert", "gpt2").eval()
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        generate(vae.decoder, z, vae.bos_id, vae.eos_id, GenerationConfig(bf16=True))
    batch = _batch(vae, 4)
    with frozen_weights_in(vae.decoder.lm, torch.bfloat16):
        out, grads = _loss_and_grads(vae, batch, z, fast=True)
    assert all(torch.isfinite(g).all() for g in grads)
