"""lmvae.probes.attention: the attention mass the decoder puts on the injected slots."""

from __future__ import annotations

import pytest
import torch

from lmvae.probes import slot_attention_mass

TEXTS = ["the cat sat on the mat", "a dog runs", "the bird sings in the tree"]


@pytest.mark.parametrize("mode", ["prefix", "per_position", "prompt"])
def test_mass_is_a_share_per_layer_and_position(make_vae, mode):
    vae = make_vae("bert", "llama-gqa", decoder_injection=mode, decoder_max_length=12).eval()
    impl = vae.decoder.lm.config._attn_implementation
    out = slot_attention_mass(vae, TEXTS, batch_size=2)
    assert len(out["per_layer"]) == vae.decoder.kv_shape.num_layers
    assert all(0.0 <= m <= 1.0 for m in out["per_layer"] + out["per_position"])
    assert 0.0 < out["mean"] < 1.0
    assert len(out["per_position"]) == max(len(t.split()) for t in TEXTS) + 1  # BOS + words
    assert vae.decoder.lm.config._attn_implementation == impl  # restored


def test_a_prompt_of_real_token_embeddings_gets_the_attention_those_tokens_get(make_vae):
    """Known answer: a soft prompt equal to the embeddings of real tokens is those tokens, so
    the mass on it is what the LM itself gives them when they are text before the sentence."""
    vae = make_vae("bert", "llama-gqa", decoder_injection="prompt", decoder_num_slots=3).eval()
    lm = vae.decoder.lm
    prompt_ids = torch.tensor([5, 9, 7])
    with torch.no_grad():
        vae.decoder.injector.kv.weight.zero_()
        vae.decoder.injector.kv.bias.copy_(lm.get_input_embeddings()(prompt_ids).flatten())
    batch = vae.decoder_inputs(TEXTS)
    z = vae.encode(TEXTS)
    mass = vae.decoder.slot_attention(z, batch["input_ids"], batch["attention_mask"])
    ids = torch.cat([prompt_ids.expand(len(TEXTS), -1), batch["input_ids"]], 1)
    mask = torch.cat([torch.ones(len(TEXTS), 3, dtype=torch.long), batch["attention_mask"]], 1)
    impl = lm.config._attn_implementation
    lm.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = lm(input_ids=ids, attention_mask=mask, output_attentions=True)
    finally:
        lm.set_attn_implementation(impl)
    expected = torch.stack([a[:, :, 3:, :3].sum(-1).mean(1) for a in out.attentions])
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(mass[:, real], expected[:, real], atol=1e-5, rtol=1e-4)
