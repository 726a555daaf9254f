"""lmvae.model: frozen backbones, parameter counts, save/load round trips and folder moves."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file
from support import CORPUS, PAIR_IDS, PAIRS, randomize_trainable, randomized_vae

from lmvae import LanguageVAE
from lmvae.errors import ConfigError, LoadError
from lmvae.model import BACKBONE_PREFIXES
from lmvae.objective import elbo_loss

TEXTS = CORPUS[:4]
GREEDY = {"max_new_tokens": 8}


def _backbone_params(vae):
    return list(vae.encoder.backbone.parameters()) + list(vae.decoder.lm.parameters())


def _step_batch(vae, texts):
    enc = vae.encoder_inputs(texts)
    return {
        **vae.decoder_inputs(texts),
        "encoder_input_ids": enc["input_ids"],
        "encoder_attention_mask": enc["attention_mask"],
    }


@pytest.mark.parametrize("enc, dec", PAIRS, ids=PAIR_IDS)
def test_adamw_steps_change_only_trainable_weights(make_vae, enc, dec):
    vae = make_vae(enc, dec, encoder_layer="mix")
    vae.train()
    frozen_before = {
        k: v.clone() for k, v in vae.state_dict().items() if k.startswith(BACKBONE_PREFIXES)
    }
    trainable_before = {k: v.clone() for k, v in vae.trainable_state_dict().items()}
    assert frozen_before and trainable_before
    opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=1e-2)
    batch = _step_batch(vae, TEXTS)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        out = vae(**batch, generator=gen)
        loss = elbo_loss(out.tokens.nll, out.tokens.num_tokens, out.kl_per_dim, 1.0, 0.1).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = vae.state_dict()
    for k, v in frozen_before.items():
        assert torch.equal(after[k], v), f"backbone weight {k} changed"
    for k, v in trainable_before.items():
        assert not torch.equal(after[k], v), f"trainable weight {k} did not change"
    assert set(trainable_before) == {k for k in after if not k.startswith(BACKBONE_PREFIXES)}


@pytest.mark.parametrize("enc, dec", PAIRS, ids=PAIR_IDS)
def test_parameter_counts(make_vae, enc, dec):
    vae = make_vae(enc, dec, decoder_rank=4)
    head = sum(
        p.numel() for n, p in vae.encoder.named_parameters() if not n.startswith("backbone.")
    )
    assert head >= sum(p.numel() for p in vae.encoder.head.parameters())
    injector = sum(p.numel() for p in vae.decoder.injector.parameters())
    backbones = sum(p.numel() for p in vae.encoder.backbone.parameters()) + sum(
        p.numel() for p in vae.decoder.lm.parameters()
    )
    assert vae.num_parameters(trainable_only=True) == head + injector
    non_backbone = sum(
        p.numel() for n, p in vae.named_parameters() if not n.startswith(BACKBONE_PREFIXES)
    )
    assert vae.num_parameters(trainable_only=True) == non_backbone
    assert vae.num_parameters() == head + injector + backbones
    assert vae.num_parameters() > vae.num_parameters(trainable_only=True) > 0


@pytest.mark.parametrize("enc, dec", PAIRS[:3], ids=PAIR_IDS[:3])
def test_backbones_stay_in_eval_mode(make_vae, enc, dec):
    vae = make_vae(enc, dec)
    vae.train()
    assert vae.training and vae.encoder.head.training and vae.decoder.injector.training
    for backbone in (vae.encoder.backbone, vae.decoder.lm):
        assert not backbone.training
        assert not any(m.training for m in backbone.modules())
    vae.eval()
    assert not vae.encoder.head.training


def _assert_same_behaviour(a, b):
    torch.testing.assert_close(a.encode(TEXTS), b.encode(TEXTS), atol=0, rtol=0)
    assert a.reconstruct(TEXTS, **GREEDY) == b.reconstruct(TEXTS, **GREEDY)
    z = torch.randn(3, a.latent_size, generator=torch.Generator().manual_seed(9))
    assert a.decode(z, **GREEDY) == b.decode(z, **GREEDY)


@pytest.mark.parametrize("enc, dec", PAIRS, ids=PAIR_IDS)
def test_save_and_load_round_trip(make_vae, tmp_path, enc, dec):
    vae = make_vae(enc, dec, encoder_layer="mix", decoder_rank=4).eval()
    randomize_trainable(vae, seed=0)
    out = vae.save_pretrained(tmp_path / "model")
    assert sorted(os.listdir(out)) == ["README.md", "config.json", "model.safetensors"]
    saved = load_file(out / "model.safetensors")  # safetensors only: no pickle anywhere
    assert set(saved) == set(vae.trainable_state_dict())
    loaded = LanguageVAE.from_pretrained(out)
    for k, v in vae.trainable_state_dict().items():
        assert torch.equal(loaded.trainable_state_dict()[k], v), k
    saved_cfg, cfg = loaded.config.to_dict(), vae.config.to_dict()
    for side in ("encoder", "decoder"):  # backbone paths are rewritten relative to the folder
        assert os.path.samefile(
            out / saved_cfg[side].pop("backbone")["name_or_path"],
            cfg[side].pop("backbone")["name_or_path"],
        )
    assert saved_cfg == cfg
    _assert_same_behaviour(vae, loaded)


def _copy_backbones(backbones, root, enc, dec):
    root.mkdir(parents=True)
    e = shutil.copytree(backbones.encoder(enc), root / "enc")
    d = shutil.copytree(backbones.decoder(dec), root / "dec")
    return e, d


@pytest.mark.parametrize("enc, dec", [("bert", "gpt2"), ("t5", "mistral")])
def test_moving_the_whole_tree_still_loads(make_vae, backbones, tmp_path, enc, dec):
    tree = tmp_path / "old" / "tree"
    e, d = _copy_backbones(backbones, tree / "backbones", enc, dec)
    torch.manual_seed(0)
    vae = LanguageVAE.from_backbones(str(e), str(d), 8).eval()
    randomize_trainable(vae, seed=0)
    vae.save_pretrained(tree / "runs" / "best")
    config = json.loads((tree / "runs" / "best" / "config.json").read_text())
    for side in ("encoder", "decoder"):
        ref = config[side]["backbone"]["name_or_path"]
        assert not os.path.isabs(ref), ref  # relative, so the tree can move
    (tmp_path / "new").mkdir()
    shutil.move(str(tree), str(tmp_path / "new"))
    assert not tree.exists()
    moved = LanguageVAE.from_pretrained(tmp_path / "new" / "tree" / "runs" / "best")
    _assert_same_behaviour(vae, moved)
    # Saving the moved model elsewhere keeps working too.
    moved.save_pretrained(tmp_path / "new" / "tree" / "runs" / "copy")
    again = LanguageVAE.from_pretrained(tmp_path / "new" / "tree" / "runs" / "copy")
    _assert_same_behaviour(vae, again)


def test_moving_a_tree_saved_through_a_symlink(make_vae, backbones, tmp_path):
    real = tmp_path / "real"
    e, d = _copy_backbones(backbones, real / "tree" / "backbones", "bert", "gpt2")
    os.symlink(real, tmp_path / "link")
    via_link = tmp_path / "link" / "tree"
    torch.manual_seed(0)
    vae = LanguageVAE.from_backbones(
        str(via_link / "backbones" / "enc"), str(via_link / "backbones" / "dec"), 8
    )
    vae.save_pretrained(via_link / "runs" / "best")
    (tmp_path / "moved").mkdir()
    shutil.move(str(real / "tree"), str(tmp_path / "moved"))
    LanguageVAE.from_pretrained(tmp_path / "moved" / "tree" / "runs" / "best")


@pytest.mark.parametrize("enc, dec", [("bert", "gpt2"), ("t5", "llama-headdim")])
def test_bundled_folder_stands_alone(backbones, tmp_path, enc, dec):
    e, d = _copy_backbones(backbones, tmp_path / "backbones", enc, dec)
    torch.manual_seed(0)
    vae = LanguageVAE.from_backbones(str(e), str(d), 8).eval()
    randomize_trainable(vae, seed=0)
    out = vae.save_pretrained(tmp_path / "bundle", bundle_backbones=True)
    assert {"README.md", "config.json", "model.safetensors", "encoder", "decoder"} == set(
        os.listdir(out)
    )
    config = json.loads((out / "config.json").read_text())
    assert config["encoder"]["backbone"]["name_or_path"] == "encoder"
    assert config["decoder"]["backbone"]["name_or_path"] == "decoder"
    shutil.rmtree(tmp_path / "backbones")
    loaded = LanguageVAE.from_pretrained(out)
    _assert_same_behaviour(vae, loaded)


def test_edited_latent_size_is_a_load_error(make_vae, tmp_path):
    out = make_vae("bert", "gpt2").save_pretrained(tmp_path / "m")
    config = json.loads((out / "config.json").read_text())
    config["latent_size"] = 9
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match="latent size"):
        LanguageVAE.from_pretrained(out)


def test_missing_folder_is_a_load_error(tmp_path):
    with pytest.raises(LoadError, match="no such directory"):
        LanguageVAE.from_pretrained(tmp_path / "nope")
    with pytest.raises(LoadError, match="config.json is missing"):
        LanguageVAE.from_pretrained(tmp_path)


# -- the training pass ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vae(make_vae):
    return randomized_vae(make_vae)


def test_forward_output(vae):
    batch = _step_batch(vae, TEXTS)
    out = vae(**batch, sample=False)
    torch.testing.assert_close(out.z, out.mu)
    assert out.kl_per_dim.shape == (4, 8) and (out.kl_per_dim >= 0).all()
    assert out.tokens.num_tokens.tolist() == [len(t.split()) + 1 for t in TEXTS]
    # cached features give the same result as encoder tokens
    feats = vae.features(batch["encoder_input_ids"], batch["encoder_attention_mask"])
    dec_batch = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    again = vae(**dec_batch, features=feats, sample=False)
    torch.testing.assert_close(again.tokens.nll, out.tokens.nll)


def test_forward_needs_encoder_inputs_or_features(vae):
    with pytest.raises(ConfigError, match="forward needs"):
        vae(**vae.decoder_inputs(TEXTS))
    with pytest.raises(ConfigError, match="empty sentence"):
        vae.decoder_inputs(["the cat", "   "])
