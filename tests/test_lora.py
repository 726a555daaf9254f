"""lmvae.adapters: LoRA (PEFT) on the decoder and encoder and unfrozen top layers: what trains,
that a fresh adapter changes nothing, that training moves only the adapted weights, that the
trainer stops caching features of a training encoder, and exact save / load round trips."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file
from support import CORPUS, PAIR_IDS, PAIRS

from lmvae import LanguageVAE, TrainConfig, train
from lmvae.adapters import transformer_layers
from lmvae.errors import ConfigError
from lmvae.model import BACKBONE_PREFIXES
from lmvae.objective import elbo_loss
from lmvae.training.setup import param_groups

pytest.importorskip("peft")

TEXTS = CORPUS[:4]


def _backbone_trainable(vae):
    return {
        n for n, p in vae.named_parameters() if p.requires_grad and n.startswith(BACKBONE_PREFIXES)
    }


def _batch(vae, texts=TEXTS):
    enc = vae.encoder_inputs(texts)
    return {
        **vae.decoder_inputs(texts),
        "encoder_input_ids": enc["input_ids"],
        "encoder_attention_mask": enc["attention_mask"],
    }


def _steps(vae, n=3):
    vae.train()
    opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(n):
        out = vae(**_batch(vae), generator=gen)
        loss = elbo_loss(out.tokens.nll, out.tokens.num_tokens, out.kl_per_dim, 1.0).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return vae.eval()


@pytest.mark.parametrize("enc, dec", PAIRS, ids=PAIR_IDS)
def test_lora_trains_only_adapters_and_starts_as_the_frozen_model(make_vae, enc, dec):
    plain = make_vae(enc, dec, encoder_layer=-1).eval()
    lora = make_vae(enc, dec, encoder_layer=-1, encoder_lora_rank=2, decoder_lora_rank=2).eval()
    trainable = _backbone_trainable(lora)
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert any(n.startswith("encoder.backbone.") for n in trainable)
    assert any(n.startswith("decoder.lm.") for n in trainable)
    # B starts at zero: the adapted backbones compute what the frozen ones do.
    torch.testing.assert_close(lora.encode(TEXTS), plain.encode(TEXTS), atol=1e-5, rtol=1e-5)
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    assert lora.decode(z, max_new_tokens=6) == plain.decode(z, max_new_tokens=6)
    base = {k: v.clone() for k, v in lora.state_dict().items() if k not in trainable}
    _steps(lora)
    after = lora.state_dict()
    for k, v in base.items():
        if k.startswith(BACKBONE_PREFIXES):
            assert torch.equal(after[k], v), f"frozen weight {k} changed"
    moved = [n for n in trainable if ".lora_B." in n and after[n].abs().sum() > 0]
    assert moved, "no LoRA B matrix left zero"


@pytest.mark.parametrize("name, expected", [("gpt2", "h"), ("llama-gqa", "layers")])
def test_unfreeze_top_layers_of_the_decoder(make_vae, name, expected):
    vae = make_vae("bert", name, decoder_unfreeze_top=1)
    layers = transformer_layers(vae.decoder.lm)
    assert len(layers) == 2
    names = _backbone_trainable(vae)
    top = {f"decoder.lm.{n}" for n, _ in vae.decoder.lm.named_parameters() if f"{expected}.1." in n}
    assert names == top and top
    with pytest.raises(ConfigError, match="cannot unfreeze the top 3 layers: the model has 2"):
        make_vae("bert", name, decoder_unfreeze_top=3)


@pytest.mark.parametrize("enc", ["bert", "t5"])
def test_encoder_adaptation_must_reach_the_pooled_layer(make_vae, enc):
    with pytest.raises(ConfigError, match="cannot change the pooled hidden state 0"):
        make_vae(enc, "gpt2", encoder_lora_rank=2)  # the default pools the embeddings
    with pytest.raises(ConfigError, match="lowest trained layer is 2"):
        make_vae(enc, "gpt2", encoder_layer=1, encoder_unfreeze_top=1)
    vae = make_vae(enc, "gpt2", encoder_layer=-1, encoder_unfreeze_top=1)
    feats = vae.features(**vae.encoder_inputs(TEXTS))
    assert feats.requires_grad  # a training encoder gives features with gradients


def test_trainer_recomputes_features_of_a_training_encoder_and_uses_backbone_lr(make_vae):
    vae = make_vae("bert", "gpt2", encoder_layer=-1, encoder_lora_rank=2, decoder_lora_rank=2)
    groups = param_groups(vae, TrainConfig(backbone_lr=3e-4))
    assert len(groups) == 2 and groups[1]["lr"] == 3e-4
    assert sum(p.numel() for g in groups for p in g["params"]) == vae.num_parameters(True)
    cfg = TrainConfig(epochs=2, batch_size=8, progress=False, eval_decode_sentences=0)
    result = train(vae, CORPUS, (), cfg)
    assert result.history[0]["encoder_passes"] == 0  # no cache: every batch runs the encoder
    plain = make_vae("bert", "gpt2", encoder_layer=-1)
    cached = train(plain, CORPUS, (), cfg)
    assert cached.history[-1]["encoder_passes"] == len(CORPUS)


@pytest.mark.parametrize(
    "opts",
    [
        {"decoder_lora_rank": 4},
        {"encoder_lora_rank": 2, "encoder_layer": "mix"},
        {"decoder_unfreeze_top": 1, "encoder_unfreeze_top": 1, "encoder_layer": -1},
        {"decoder_lora_rank": 2, "decoder_unfreeze_top": 1, "decoder_lora_targets": ["c_proj"]},
    ],
    ids=["lora-dec", "lora-enc", "unfreeze-both", "lora-and-unfreeze"],
)
def test_save_and_load_reproduce_adapted_models_exactly(make_vae, tmp_path, opts):
    vae = _steps(make_vae("bert", "gpt2", **opts), n=2)
    out = vae.save_pretrained(tmp_path / "m")
    assert sorted(os.listdir(out)) == ["README.md", "config.json", "model.safetensors"]
    saved = load_file(out / "model.safetensors")
    assert set(saved) == set(vae.trainable_state_dict()) >= _backbone_trainable(vae)
    loaded = LanguageVAE.from_pretrained(out)
    assert _backbone_trainable(loaded) == _backbone_trainable(vae)
    for k, v in vae.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    torch.testing.assert_close(loaded.encode(TEXTS), vae.encode(TEXTS), atol=0, rtol=0)
    assert loaded.reconstruct(TEXTS, max_new_tokens=8) == vae.reconstruct(TEXTS, max_new_tokens=8)


def test_lora_model_trains_through_the_trainer(make_vae):
    vae = make_vae("bert", "gpt2", decoder_lora_rank=4, decoder_max_length=16)
    cfg = TrainConfig(epochs=6, batch_size=8, beta_max=0.0, progress=False, lr=1e-2)
    cfg.eval_decode_sentences = 0
    recon = [r["train_recon"] for r in train(vae, CORPUS, (), cfg).history]
    assert recon[-1] < 0.7 * recon[0], recon
