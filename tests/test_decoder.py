"""lmvae.decoder, per decoder architecture: prefix injection gives the same logits whether the
sentence is fed at once (teacher forcing) or token by token from the cache, the logits are the
LM's own, z is live, and gradients reach only the trainable projections."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from support import DECODER_IDS
from support import incremental_logits as _incremental
from support import latents as _z
from support import teacher_forced_logits as _teacher_forced
from transformers import DynamicCache

from lmvae.cache import position_ids, prefix_attention_mask
from lmvae.decoder import IGNORE_INDEX
from lmvae.errors import ConfigError
from lmvae.model import BACKBONE_PREFIXES
from lmvae.objective import elbo_loss

TEXTS = ["the cat sat on the mat near the fire", "a dog runs"]
ATOL = 1e-4

VARIANTS = {
    "plain": {},
    "embed-rank": {"decoder_embed_injection": True, "decoder_rank": 8},
    # Text around the soft prompt; its last token (":") starts the sentence in place of BOS.
    "template": {
        "decoder_injection": "prompt",
        "decoder_prompt_template": "Text: {latent}\nSame text:",
    },
}


@pytest.fixture(scope="module")
def vaes(make_vae):
    cache = {}

    def get(name, variant="plain"):
        key = (name, variant)
        if key not in cache:
            vae = make_vae("bert", name, decoder_num_slots=3, **VARIANTS[variant])
            if vae.decoder.injector.embed is not None:
                # Zero-initialised by design; give it weight so the tests see its effect.
                torch.manual_seed(1)
                torch.nn.init.normal_(vae.decoder.injector.embed.weight, std=0.5)
            vae.eval()
            cache[key] = vae
        return cache[key]

    return get


def _assert_close_on_real(a, b, mask):
    real = mask.bool()
    torch.testing.assert_close(a[real], b[real], atol=ATOL, rtol=1e-4)


ARCHS = [pytest.param(n, v, id=f"{n}-{v}") for n in DECODER_IDS for v in VARIANTS]
ARCHS_PLAIN = [pytest.param(n, id=n) for n in DECODER_IDS]


@pytest.mark.parametrize("name, variant", ARCHS)
def test_incremental_decoding_matches_teacher_forcing_single(vaes, name, variant):
    vae = vaes(name, variant)
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS[:1])
    z = _z(1)
    tf = _teacher_forced(dec, z, batch)
    inc = _incremental(dec, z, batch["input_ids"])
    assert torch.isfinite(tf).all()
    torch.testing.assert_close(inc, tf, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("name, variant", ARCHS)
def test_incremental_decoding_matches_teacher_forcing_right_padded_batch(vaes, name, variant):
    vae = vaes(name, variant)
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS)
    mask = batch["attention_mask"]
    assert mask[1].sum() < mask[0].sum()  # really padded
    z = _z(2)
    tf = _teacher_forced(dec, z, batch)
    # Batched steps: row 1 is fed pads after its end, which must not matter for real positions.
    _assert_close_on_real(_incremental(dec, z, batch["input_ids"]), tf, mask)
    # Each row decoded on its own.
    for r in range(2):
        n = int(mask[r].sum())
        alone = _incremental(dec, z[r : r + 1], batch["input_ids"][r : r + 1, :n])
        torch.testing.assert_close(alone[0], tf[r, :n], atol=ATOL, rtol=1e-4)
    # Padding does not change the short sentence's logits either.
    single = vae.decoder_inputs(TEXTS[1:])
    n = int(mask[1].sum())
    torch.testing.assert_close(_teacher_forced(dec, z[1:], single)[0], tf[1, :n], atol=ATOL, rtol=0)


def _lm_after_soft_prompt(vae, z, ids, mask):
    """The LM's own logits of the sentence after the template's text tokens (tokenised here
    from the template) around the vectors made from z, all in one plain forward."""
    dec, tok = vae.decoder, vae.decoder_tokenizer
    before, after = vae.config.decoder.prompt_template.split("{latent}")
    before, after = (tok(t, add_special_tokens=False)["input_ids"] for t in (before, after))
    assert ids[:, 0].eq(after[-1]).all()  # the suffix's last token starts the sentence
    embed = dec.lm.get_input_embeddings()
    with torch.no_grad():
        vectors = dec.injector(z)[0]
        text = [embed(torch.tensor(t))[None].expand(len(ids), -1, -1) for t in (before, after[:-1])]
        prompt = torch.cat([text[0], vectors, text[1]], 1)
        n = prompt.shape[1]
        logits = dec.lm(
            inputs_embeds=torch.cat([prompt, embed(ids)], 1),
            attention_mask=prefix_attention_mask(mask, n),
            position_ids=torch.cat(
                [torch.arange(n).expand(len(ids), -1), position_ids(mask) + n], 1
            ),
        ).logits
    return logits[:, n:]


@pytest.mark.parametrize("name, variant", ARCHS)
def test_logits_equal_the_lms_own_forward(vaes, name, variant):
    vae = vaes(name, variant)
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    z = _z(2, seed=1)
    ours = _teacher_forced(dec, z, batch)
    if dec.injector.mode == "prompt":  # the template's text, the vectors, then the sentence
        _assert_close_on_real(ours, _lm_after_soft_prompt(vae, z, ids, mask), mask)
        return
    with torch.no_grad():
        cache, offset = dec.prefix(z)  # a second cache built from the same z
        inputs = {"input_ids": ids}
        if offset is not None:
            embeds = dec.lm.get_input_embeddings()(ids)
            inputs = {"inputs_embeds": embeds + offset[:, None, :]}
        theirs = dec.lm(
            **inputs,
            attention_mask=prefix_attention_mask(mask, dec.config.num_slots),
            position_ids=position_ids(mask),
            use_cache=True,
            **{dec._cache_arg: cache},
        ).logits
    _assert_close_on_real(ours, theirs, mask)


@pytest.mark.parametrize("name, variant", ARCHS)
def test_changing_z_changes_the_logits(vaes, name, variant):
    vae = vaes(name, variant)
    batch = vae.decoder_inputs(TEXTS[:1])
    a = _teacher_forced(vae.decoder, _z(1, 0), batch)
    b = _teacher_forced(vae.decoder, _z(1, 1), batch)
    assert (a - b).abs().max() > 1e-2
    # The effect reaches the very first position (the prefix is attended to from the start).
    assert (a[0, 0] - b[0, 0]).abs().max() > 1e-3


@pytest.mark.parametrize("name", ARCHS_PLAIN)
def test_embedding_offset_alone_is_live(vaes, name):
    vae = vaes(name, "embed-rank")
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS[:1])
    z = _z(1)
    with torch.no_grad():
        cache, offset = dec.prefix(z)
        mask = prefix_attention_mask(batch["attention_mask"], dec.config.num_slots)
        pos = position_ids(batch["attention_mask"])
        with_offset = dec._run(batch["input_ids"], mask, pos, cache, offset)
        cache, _ = dec.prefix(z)
        without = dec._run(batch["input_ids"], mask, pos, cache, None)
    assert (with_offset - without).abs().max() > 1e-3


@pytest.mark.parametrize("name, variant", ARCHS)
def test_gradients_reach_only_trainable_parameters(vaes, name, variant):
    vae = vaes(name, variant)
    vae.train()
    vae.zero_grad(set_to_none=True)
    enc = vae.encoder_inputs(TEXTS)
    out = vae(
        **vae.decoder_inputs(TEXTS),
        encoder_input_ids=enc["input_ids"],
        encoder_attention_mask=enc["attention_mask"],
        generator=torch.Generator().manual_seed(0),
    )
    terms = elbo_loss(out.tokens.nll, out.tokens.num_tokens, out.kl_per_dim, beta=1.0)
    assert torch.isfinite(terms.loss)
    terms.loss.backward()
    trainable = set()
    for pname, p in vae.named_parameters():
        if pname.startswith(BACKBONE_PREFIXES):
            assert p.grad is None, pname
            assert not p.requires_grad, pname
        else:
            trainable.add(pname)
            assert p.grad is not None, pname
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    heads = {f"encoder.{n}" for n, _ in vae.encoder.named_parameters()}
    heads = {n for n in heads if not n.startswith("encoder.backbone.")}
    injector = {f"decoder.injector.{n}" for n, _ in vae.decoder.injector.named_parameters()}
    assert trainable == heads | injector
    assert any(".embed." in n for n in injector) == (variant == "embed-rank")
    vae.zero_grad(set_to_none=True)
    vae.eval()


@pytest.mark.parametrize("name", ARCHS_PLAIN)
def test_token_loss_by_hand(vaes, name):
    vae = vaes(name)
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS)
    z = _z(2, seed=3)
    with torch.no_grad():
        loss = dec.token_loss(z, **batch)
        logits = _teacher_forced(dec, z, batch)
    labels = batch["labels"]
    for r in range(2):
        keep = labels[r] != IGNORE_INDEX
        nll = F.cross_entropy(logits[r][keep], labels[r][keep], reduction="sum")
        assert loss.nll[r].item() == pytest.approx(nll.item(), rel=1e-4, abs=1e-4)
        assert loss.num_tokens[r].item() == int(keep.sum())
        correct = (logits[r][keep].argmax(-1) == labels[r][keep]).sum()
        assert loss.num_correct[r].item() == int(correct)
    assert loss.num_tokens.tolist() == [len(t.split()) + 1 for t in TEXTS]  # words + EOS


def test_decoding_state_advances(vaes):
    vae = vaes("llama-gqa")
    dec = vae.decoder
    state = dec.start(_z(2))
    assert state.attention_mask.shape == (2, 3) and state.position == 0
    assert state.cache.get_seq_length() == 3
    with torch.no_grad():
        logits = dec.step(torch.full((2, 1), vae.bos_id), state)
    assert logits.shape == (2, len(vae.decoder_tokenizer)) and logits.dtype == torch.float32
    assert state.position == 1 and state.attention_mask.shape == (2, 4)
    assert state.cache.get_seq_length() == 4


@pytest.mark.parametrize("name", ["cohere", "granite"])
def test_logits_equal_the_lms_own_for_scaled_heads(make_vae, name):
    vae = make_vae("bert", name, decoder_num_slots=3).eval()
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS)
    mask = batch["attention_mask"]
    z = _z(2)
    ours = _teacher_forced(dec, z, batch)
    with torch.no_grad():
        cache, _ = dec.prefix(z)
        theirs = dec.lm(
            input_ids=batch["input_ids"],
            attention_mask=prefix_attention_mask(mask, dec.config.num_slots),
            position_ids=position_ids(mask),
            use_cache=True,
            **{dec._cache_arg: cache},
        ).logits
    _assert_close_on_real(ours, theirs, mask)


def _plain_token_nll(dec, z, batch):
    """Summed token NLL through full logits and F.cross_entropy: the reference for token_loss."""
    hidden = dec.hidden_states(z, batch["input_ids"], batch["attention_mask"])
    keep = batch["labels"] != IGNORE_INDEX
    logits = dec.logits(hidden[keep]).float()
    return F.cross_entropy(logits, batch["labels"][keep], reduction="sum")


@pytest.mark.parametrize("name", [*DECODER_IDS, "cohere", "granite"])
def test_token_loss_gradient_equals_full_logits_autograd(make_vae, name):
    vae = make_vae("bert", name, decoder_num_slots=3).eval()
    batch = vae.decoder_inputs(TEXTS)
    z_fused, z_plain = _z(2, seed=5).requires_grad_(), _z(2, seed=5).requires_grad_()
    fused = vae.decoder.token_loss(z_fused, **batch).nll.sum()
    plain = _plain_token_nll(vae.decoder, z_plain, batch)
    (fused + plain).backward()
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(z_fused.grad, z_plain.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", DECODER_IDS)
def test_kv_statistics_are_the_lms_own_keys_and_values(vaes, name):
    vae = vaes(name)
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS)
    mean, std = dec.kv_statistics(batch["input_ids"], batch["attention_mask"])
    shape = dec.kv_shape
    assert mean.shape == std.shape == (shape.num_layers, 2, shape.num_kv_heads, shape.head_dim)
    # Layer 0's keys, straight from the LM's own cache, over real tokens past BOS.
    cache = DynamicCache()  # no window: every token kept
    dec.lm(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        use_cache=True,
        **{dec._cache_arg: cache},
    )
    keys = cache.layers[0].keys.transpose(1, 2)  # (B, T, kv_heads, head_dim)
    real = batch["attention_mask"].bool().clone()
    real[:, 0] = False
    torch.testing.assert_close(mean[0, 0], keys[real].mean(0), atol=1e-5, rtol=1e-4)


def test_calibrated_slots_start_in_the_decoders_kv_distribution(make_vae):
    vae = make_vae("bert", "llama-gqa", decoder_num_slots=3)
    batch = vae.decoder_inputs(TEXTS)
    mean, std = vae.decoder.kv_statistics(batch["input_ids"], batch["attention_mask"])
    vae.decoder.calibrate_slots(batch["input_ids"], batch["attention_mask"])
    kv, _ = vae.decoder.injector(torch.randn(4000, vae.latent_size))
    torch.testing.assert_close(kv.mean((0, 4)), mean, atol=0.1, rtol=0.05)


@pytest.mark.parametrize("name", [*DECODER_IDS, "gemma3", "gpt-neox"])
def test_packed_training_pass_equals_the_padded_one(make_vae, name):
    """Sentences laid end to end in one row, positions restarting per sentence, give each
    sentence the hidden states and gradients it gets alone in a padded batch."""
    vae = make_vae("bert", name, decoder_injection="prompt", decoder_num_slots=3).train()
    dec = vae.decoder  # training mode, the LM itself in eval (no dropout)
    batch = vae.decoder_inputs(TEXTS + ["birds fly"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    z = _z(3, seed=2).requires_grad_()
    dec.pack_training_pass(z.detach(), ids, mask)  # checks the family keeps sentences apart
    assert dec.pack
    outputs = []
    for pack in (False, True):
        dec.pack = pack
        z.grad = None
        hidden = dec.hidden_states(z, ids, mask)
        (hidden[mask.bool()] ** 2).sum().backward()
        outputs.append((hidden.detach(), z.grad.clone()))
    (padded, grad_padded), (packed, grad_packed) = outputs
    _assert_close_on_real(packed, padded, mask)
    torch.testing.assert_close(grad_packed, grad_padded, atol=1e-3, rtol=1e-3)
    assert packed[~mask.bool()].abs().max() == 0  # padding carries nothing


def test_packing_needs_the_soft_prompt(make_vae):
    vae = make_vae("bert", "gpt2", decoder_injection="prefix")
    batch = vae.decoder_inputs(TEXTS)
    with pytest.raises(ConfigError, match="packing applies to the soft prompt"):
        vae.decoder.pack_training_pass(_z(2), batch["input_ids"], batch["attention_mask"])


@pytest.mark.parametrize("row_tokens", [1, 12, 1024])
def test_packed_rows_hold_at_most_row_tokens(make_vae, row_tokens):
    """Rows are filled in batch order up to ``row_tokens`` positions (a longer sentence gets a
    row of its own); each row's unused tail is a segment no sentence reads."""
    from lmvae.packing import _rows, packed_forward

    assert _rows([5, 4, 3, 9], 9) == ([0, 0, 1, 2], [0, 5, 0, 0])
    vae = make_vae("bert", "llama-gqa", decoder_injection="prompt", decoder_num_slots=3).train()
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS + ["birds fly", "the dog sat"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    z = _z(4, seed=3)
    with torch.no_grad():
        padded = dec._prompt_pass(z, ids, mask, None, None, pack=False)
        prompt, tokens = dec.soft_prompt(z), dec.lm.get_input_embeddings()(ids)
        packed = packed_forward(dec.base, prompt, tokens, mask, row_tokens)
    _assert_close_on_real(packed, padded, mask)
