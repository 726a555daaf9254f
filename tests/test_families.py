"""The one decoder path on causal-LM families that no line of src/ names.

OLMo-2 (query/key norms over all heads), StableLM and GPT-NeoX (rotary on a quarter of each
head; GPT-NeoX with fused QKV and a parallel residual), Qwen2-MoE (routed and shared experts),
Mixtral (routed experts only) and GPT-BigCode (multi-query: one K/V head): each gets the LM's
own logits from the injected prefix, decodes step by step as it scores teacher-forced, trains,
and decodes the same after a save and reload.  Attention whose cache does not hold one key and
one value per head is refused at load with a one-line ConfigError: multi-head latent attention
(DeepSeek-V3) and state-space hybrids (Jamba).
"""

from __future__ import annotations

import types

import pytest
import torch
from support import CORPUS, FAMILY_DECODER_SPECS, FAMILY_IDS, HEADS, HIDDEN, LAYERS
from support import incremental_logits as _incremental
from support import latents as _z
from support import teacher_forced_logits as _teacher_forced

from lmvae import LanguageVAE, TrainConfig, train
from lmvae.backbones import load_decoder
from lmvae.cache import cache_kv_shape, kv_shape, position_ids, prefix_attention_mask
from lmvae.config import BackboneRef
from lmvae.errors import ConfigError
from lmvae.injection import KVShape

TEXTS = ["the cat sat on the mat near the fire", "a dog runs"]
ATOL = 1e-4


@pytest.fixture(scope="module")
def vaes(make_vae):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = make_vae("bert", name, decoder_num_slots=3).eval()
        return cache[name]

    return get


@pytest.mark.parametrize("name", FAMILY_IDS)
def test_the_lms_own_cache_has_the_geometry_read_from_its_config(vaes, name):
    dec = vaes(name).decoder
    extra = FAMILY_DECODER_SPECS[name][1]
    kv_heads = 1 if extra.get("multi_query") else extra.get("num_key_value_heads", HEADS)
    assert dec.kv_shape == KVShape(LAYERS, kv_heads, HIDDEN // HEADS, HIDDEN)
    assert kv_shape(dec.lm.config) == dec.kv_shape  # the config and the one-token probe agree


@pytest.mark.parametrize("name", FAMILY_IDS)
def test_incremental_decoding_matches_teacher_forcing(vaes, name):
    vae = vaes(name)
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS)
    mask = batch["attention_mask"]
    z = _z(2)
    tf = _teacher_forced(dec, z, batch)
    assert torch.isfinite(tf).all()
    # Batched steps: row 1 is fed pads after its end, which must not matter for real positions.
    inc = _incremental(dec, z, batch["input_ids"])
    real = mask.bool()
    torch.testing.assert_close(inc[real], tf[real], atol=ATOL, rtol=1e-4)
    # The short sentence alone: padding changed nothing.
    n = int(mask[1].sum())
    alone = _teacher_forced(dec, z[1:], vae.decoder_inputs(TEXTS[1:]))
    torch.testing.assert_close(alone[0], tf[1, :n], atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("name", FAMILY_IDS)
def test_logits_are_the_lms_own_and_follow_z(vaes, name):
    vae = vaes(name)
    dec = vae.decoder
    batch = vae.decoder_inputs(TEXTS)
    mask = batch["attention_mask"]
    z = _z(2, seed=1)
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
    real = mask.bool()
    torch.testing.assert_close(ours[real], theirs[real], atol=ATOL, rtol=1e-4)
    other = _teacher_forced(dec, _z(2, seed=2), batch)
    assert (ours[0, 0] - other[0, 0]).abs().max() > 1e-3  # z reaches the first position


@pytest.mark.parametrize("name", FAMILY_IDS)
def test_trains_saves_reloads_and_decodes_the_same(make_vae, name, tmp_path):
    vae = make_vae("bert", name, decoder_max_length=12)
    before = {k: v.clone() for k, v in vae.trainable_state_dict().items()}
    config = TrainConfig(
        epochs=1,
        batch_size=8,
        lr=3e-3,
        eval_decode_sentences=0,
        progress=False,
        mixed_precision="no",
    )
    result = train(vae, CORPUS[:16], CORPUS[16:20], config)  # two steps
    assert all(torch.isfinite(torch.tensor(v)) for v in result.history[-1].values())
    after = vae.trainable_state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    vae.eval()
    z = vae.encode(CORPUS[:4])
    ids = vae.decode_ids(z)
    assert any(ids)  # something to compare
    vae.save_pretrained(tmp_path / "vae")
    loaded = LanguageVAE.from_pretrained(tmp_path / "vae")
    torch.testing.assert_close(loaded.encode(CORPUS[:4]), z)
    assert loaded.decode_ids(z) == ids
    assert loaded.reconstruct(CORPUS[:4]) == vae.reconstruct(CORPUS[:4])


# -- refused at load --------------------------------------------------------------------------


def _refusal(backbones, name) -> str:
    with pytest.raises(ConfigError) as error:
        LanguageVAE.from_backbones(str(backbones.encoder("bert")), str(backbones.decoder(name)), 8)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_multi_head_latent_attention_is_refused_at_load(backbones):
    message = _refusal(backbones, "deepseek-v3-mla")
    assert "kv_lora_rank=16" in message and "multi-head latent attention" in message


def test_a_state_space_hybrid_is_refused_at_load(backbones):
    message = _refusal(backbones, "jamba-hybrid")
    assert message.startswith("layer 0 of the decoder caches no keys and values")


def test_the_probe_finds_a_cache_layout_the_geometry_does_not_describe(backbones, monkeypatch):
    lm, _ = load_decoder(BackboneRef(str(backbones.decoder("deepseek-v3-mla"))))
    # What per-head keys of width qk_nope + qk_rope = 24 would look like; the cache holds the
    # compressed latent (16) as "keys" and the shared rotary key (8) as "values".
    # Past the config check (as a family naming its latent otherwise would be), the cache probe
    # must refuse it.
    monkeypatch.setattr("lmvae.cache.kv_shape", lambda config: KVShape(LAYERS, HEADS, 24, HIDDEN))
    with pytest.raises(ConfigError, match=r"keys \(1, 1, 1, 16\) and values \(1, 1, 1, 8\)"):
        cache_kv_shape(lm)


def test_keys_and_values_of_different_widths_are_refused():
    cfg = types.SimpleNamespace(
        hidden_size=64, num_attention_heads=4, num_hidden_layers=2, head_dim=24, v_head_dim=16
    )
    with pytest.raises(ConfigError, match="value heads are 16 wide and its key heads 24"):
        kv_shape(cfg)
    cfg.v_head_dim = 24
    assert kv_shape(cfg).head_dim == 24


def test_a_geometry_given_per_layer_is_refused():
    class PerLayer(types.SimpleNamespace):
        @property
        def head_dim(self):
            raise RuntimeError("head_dim is a per-layer attribute")

    cfg = PerLayer(hidden_size=64, num_attention_heads=4, num_hidden_layers=2)
    with pytest.raises(ConfigError, match="sets head_dim per layer"):
        kv_shape(cfg)
