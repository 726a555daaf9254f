"""DecoderConfig.injection: prefix slots, per-position slots (langvae's layout) and Optimus'
memory vector, each consistent between teacher forcing and cached decoding on every decoder
architecture, trainable through the trainer, and saved / loaded exactly."""

from __future__ import annotations

import json

import pytest
import torch
from support import CORPUS, DECODER_IDS, randomize_trainable
from support import incremental_logits as _incremental
from support import latents as _z
from support import teacher_forced_logits as _teacher_forced

from lmvae import LanguageVAE, TrainConfig, train
from lmvae.errors import ConfigError
from lmvae.injection import KVShape, LatentInjector

MODES = ["prefix", "per_position", "memory", "prompt"]
TEXTS = ["the cat sat on the mat near the fire", "a dog runs"]
MAX_LENGTH = 12


def _vae(make_vae, dec="gpt2", mode="per_position", **opts):
    vae = make_vae("bert", dec, decoder_injection=mode, decoder_max_length=MAX_LENGTH, **opts)
    if vae.decoder.injector.embed is not None:
        # Zero-initialised by design; give it weight so the tests see its effect.
        torch.manual_seed(1)
        torch.nn.init.normal_(vae.decoder.injector.embed.weight, std=0.5)
    return vae.eval()


@pytest.mark.parametrize("mode", ["per_position", "memory", "prompt"])
@pytest.mark.parametrize("dec", DECODER_IDS)
def test_cached_decoding_matches_teacher_forcing(make_vae, dec, mode):
    vae = _vae(make_vae, dec, mode)
    batch = vae.decoder_inputs(TEXTS)
    z = _z(2)
    tf = _teacher_forced(vae.decoder, z, batch)
    inc = _incremental(vae.decoder, z, batch["input_ids"])
    real = batch["attention_mask"].bool()
    assert torch.isfinite(tf).all()
    torch.testing.assert_close(inc[real], tf[real], atol=1e-4, rtol=1e-4)
    # z is live from the first position on.
    other = _teacher_forced(vae.decoder, _z(2, seed=1), batch)
    assert (other[:, 0] - tf[:, 0]).abs().max() > 1e-3


def test_per_position_slot_t_reaches_only_positions_from_t_on(make_vae):
    vae = _vae(make_vae)
    dec = vae.decoder
    assert dec.num_slots == MAX_LENGTH and dec.injector.causal_slots
    batch = vae.decoder_inputs(TEXTS[:1])  # 10 positions: BOS + 9 words
    z = _z(1)
    before = _teacher_forced(dec, z, batch)
    s = dec.kv_shape
    j = 4
    with torch.no_grad():  # move only slot j's keys and values, in every layer
        bias = dec.injector.kv.bias.view(s.num_layers, 2, s.num_kv_heads, MAX_LENGTH, s.head_dim)
        bias[:, :, :, j] += 1.0
    after = _teacher_forced(dec, z, batch)
    torch.testing.assert_close(after[0, :j], before[0, :j], atol=1e-6, rtol=0)
    changed = (after[0] - before[0]).abs().amax(-1)
    assert (changed[j:] > 1e-4).all(), changed


def test_per_position_eager_and_sdpa_masks_agree(make_vae):
    vae = _vae(make_vae, "llama-gqa")
    batch = vae.decoder_inputs(TEXTS)
    z = _z(2)
    sdpa = _teacher_forced(vae.decoder, z, batch)
    vae.decoder.lm.set_attn_implementation("eager")
    try:
        eager = _teacher_forced(vae.decoder, z, batch)
        inc = _incremental(vae.decoder, z, batch["input_ids"])
    finally:
        vae.decoder.lm.set_attn_implementation("sdpa")
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(eager[real], sdpa[real], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(inc[real], sdpa[real], atol=1e-4, rtol=1e-4)


def test_memory_is_one_vector_used_as_key_and_value(make_vae):
    vae = _vae(make_vae, "llama-gqa", "memory")
    dec = vae.decoder
    assert dec.num_slots == 1 and dec.injector.embed is not None
    cache, offset = dec.prefix(_z(3))
    assert offset.shape == (3, dec.kv_shape.hidden_size)
    for layer in range(dec.kv_shape.num_layers):
        keys, values = cache.layers[layer].keys, cache.layers[layer].values
        assert keys.shape == (3, dec.kv_shape.num_kv_heads, 1, dec.kv_shape.head_dim)
        assert torch.equal(keys, values)


def test_parameter_counts_per_mode():
    shape = KVShape(num_layers=3, num_kv_heads=2, head_dim=5, hidden_size=12)
    d = 4

    def count(mode, slots=6):
        return sum(p.numel() for p in LatentInjector(d, shape, slots, mode=mode).parameters())

    assert count("prefix") == (d + 1) * shape.slot_numel * 6
    assert count("per_position", slots=20) == (d + 1) * shape.slot_numel * 20
    assert count("memory") == (d + 1) * 3 * 2 * 5 + (d + 1) * 12  # K=V vector + embedding


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_trains_through_the_trainer(make_vae, mode):
    vae = make_vae("bert", "gpt2", decoder_injection=mode, decoder_max_length=MAX_LENGTH)
    cfg = TrainConfig(epochs=6, batch_size=8, beta_max=0.0, progress=False, lr=1e-2)
    cfg.eval_decode_sentences = 0
    result = train(vae, CORPUS, (), cfg)
    recon = [r["train_recon"] for r in result.history]
    assert recon[-1] < 0.8 * recon[0], recon  # a mode with no gradient path stays flat


@pytest.mark.parametrize("mode", MODES)
def test_save_and_load_reproduce_outputs(make_vae, tmp_path, mode):
    vae = _vae(make_vae, "llama-gqa", mode)
    randomize_trainable(vae, seed=3)
    vae.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["decoder"]["injection"] == mode
    loaded = LanguageVAE.from_pretrained(tmp_path / "m")
    torch.testing.assert_close(loaded.encode(TEXTS), vae.encode(TEXTS), atol=0, rtol=0)
    z = _z(3, seed=5)
    assert loaded.decode(z, max_new_tokens=8) == vae.decode(z, max_new_tokens=8)
    assert loaded.reconstruct(TEXTS, strategy="beam", num_beams=3) == vae.reconstruct(
        TEXTS, strategy="beam", num_beams=3
    )


def test_unknown_injection_is_named(make_vae):
    with pytest.raises(ConfigError, match="unknown decoder injection 'cross'"):
        make_vae("bert", "gpt2", decoder_injection="cross")
