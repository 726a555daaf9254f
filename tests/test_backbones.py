"""lmvae.backbones: resolving names, loading frozen encoders/decoders of several kinds."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from lmvae.backbones import freeze, load_decoder, load_encoder, resolve
from lmvae.config import BackboneRef
from lmvae.errors import LoadError


def test_resolve_prefers_the_base_dir_then_the_working_dir(tmp_path, monkeypatch):
    (tmp_path / "base" / "bb").mkdir(parents=True)
    (tmp_path / "cwd" / "bb").mkdir(parents=True)
    (tmp_path / "cwd" / "only_here").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    ref = BackboneRef("bb")
    assert resolve(ref, tmp_path / "base") == str(tmp_path / "base" / "bb")
    assert resolve(ref) == str(tmp_path / "cwd" / "bb")
    assert resolve(BackboneRef("only_here"), tmp_path / "base") == str(
        tmp_path / "cwd" / "only_here"
    )


def test_resolve_hub_ids_and_missing_folders(tmp_path):
    assert resolve(BackboneRef("org/model")) == "org/model"
    assert resolve(BackboneRef("gpt2")) == "gpt2"
    for missing in (str(tmp_path / "nope"), "./nope", "../nope"):
        with pytest.raises(LoadError, match="does not exist"):
            resolve(BackboneRef(missing))
    with pytest.raises(LoadError, match="no backbone given"):
        resolve(BackboneRef(""))


def _frozen(model):
    return not model.training and all(not p.requires_grad for p in model.parameters())


def test_t5_loads_only_its_encoder_stack(backbones):
    model, tok = load_encoder(BackboneRef(str(backbones.encoder("t5"))))
    assert type(model).__name__ == "T5EncoderModel"
    assert not any("decoder" in name for name, _ in model.named_parameters())
    assert _frozen(model)
    assert tok.pad_token_id == 0


def test_bart_loads_only_its_encoder_stack(backbones):
    model, _ = load_encoder(BackboneRef(str(backbones.encoder("bart"))))
    assert type(model).__name__ == "BartEncoder"
    assert not any("decoder" in name for name, _ in model.named_parameters())
    assert _frozen(model)


def test_bert_loads_without_the_unused_pooler(backbones):
    model, tok = load_encoder(BackboneRef(str(backbones.encoder("bert"))))
    assert type(model).__name__ == "BertModel"
    assert getattr(model, "pooler", None) is None
    assert _frozen(model)
    assert tok.cls_token_id is not None


def test_mpnet_encoder(backbones):
    model, _ = load_encoder(BackboneRef(str(backbones.encoder("mpnet"))))
    assert type(model).__name__ == "MPNetModel" and _frozen(model)


@pytest.mark.parametrize("name", ["gpt2-enc", "llama-enc"])
def test_decoder_only_lm_as_encoder_gets_a_pad_token(backbones, name):
    model, tok = load_encoder(BackboneRef(str(backbones.encoder(name))))
    assert type(model).__name__ in ("GPT2Model", "LlamaModel")  # base model, no LM head
    assert tok.pad_token_id is not None
    assert _frozen(model)


@pytest.mark.parametrize("name", ["gpt2", "gemma"])
def test_load_decoder_is_frozen_causal_lm(backbones, name):
    lm, tok = load_decoder(BackboneRef(str(backbones.decoder(name))))
    assert _frozen(lm)
    assert lm.get_output_embeddings() is not None
    assert tok.eos_token_id is not None


def test_encoder_only_model_is_not_a_decoder(backbones):
    with pytest.raises(LoadError, match="not a causal LM"):
        load_decoder(BackboneRef(str(backbones.encoder("t5"))))


def test_decoder_tokenizer_without_eos_is_rejected(backbones, tmp_path):
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path / "dec"
    shutil.copytree(backbones.decoder("gpt2"), folder)
    for name in os.listdir(folder):
        if "token" in name:
            os.remove(folder / name)
    tok = PreTrainedTokenizerFast(tokenizer_file=None, tokenizer_object=_word_level())
    tok.save_pretrained(folder)
    with pytest.raises(LoadError, match="no EOS token"):
        load_decoder(BackboneRef(str(folder)))


def _word_level():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_unknown_hub_id_fails_fast_offline():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    with pytest.raises(LoadError, match="no-such-org/no-such-model"):
        load_encoder(BackboneRef("no-such-org/no-such-model"))
    with pytest.raises(LoadError, match="no-such-org/no-such-model"):
        load_decoder(BackboneRef("no-such-org/no-such-model"))


def test_freeze():
    layer = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()
    assert freeze(layer) is layer
    assert not layer.training and not any(p.requires_grad for p in layer.parameters())


def test_composed_tanh_gelu_is_swapped_for_the_fused_kernel(backbones):
    from transformers import AutoModelForCausalLM
    from transformers.activations import NewGELUActivation

    folder = str(backbones.decoder("gpt2"))
    lm, _ = load_decoder(BackboneRef(folder))
    original = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert any(isinstance(m, NewGELUActivation) for m in original.modules())
    assert not any(isinstance(m, NewGELUActivation) for m in lm.modules())
    ids = torch.tensor([[1, 5, 6, 7, 8, 2]])
    with torch.no_grad():
        torch.testing.assert_close(lm(ids).logits, original(ids).logits, atol=1e-5, rtol=1e-5)


def test_fuse_activations_matches_the_composed_formulas():
    from transformers.activations import FastGELUActivation, NewGELUActivation

    from lmvae.backbones import fuse_activations

    x = torch.linspace(-8, 8, 2001, dtype=torch.float64)
    for composed in (NewGELUActivation(), FastGELUActivation()):
        model = fuse_activations(torch.nn.Sequential(torch.nn.Identity(), composed))
        assert isinstance(model[1], torch.nn.GELU)
        torch.testing.assert_close(model(x), composed(x), atol=1e-9, rtol=1e-9)


def _pickled_copy(backbones, tmp_path, role="decoder"):
    """The tiny GPT-2 (or BERT) re-saved as pytorch_model.bin only: a pickle."""
    from transformers import AutoModel, AutoModelForCausalLM

    source = backbones.decoder("gpt2") if role == "decoder" else backbones.encoder("bert")
    folder = shutil.copytree(source, tmp_path / f"pickled-{role}")
    (folder / "model.safetensors").unlink()
    cls = AutoModelForCausalLM if role == "decoder" else AutoModel
    torch.save(cls.from_pretrained(source).state_dict(), folder / "pytorch_model.bin")
    return folder


def test_pickled_backbones_are_refused_unless_allowed(backbones, tmp_path):
    dec = _pickled_copy(backbones, tmp_path, "decoder")
    enc = _pickled_copy(backbones, tmp_path, "encoder")
    with pytest.raises(LoadError, match="pickled weights only.*allow_pickle"):
        load_decoder(BackboneRef(str(dec)))
    with pytest.raises(LoadError, match="pickled weights only"):
        load_encoder(BackboneRef(str(enc)))
    lm, _ = load_decoder(BackboneRef(str(dec)), allow_pickle=True)
    assert lm.config.model_type == "gpt2"


def test_pickled_backbone_through_the_api_and_the_cli(backbones, tmp_path, capsys):
    from lmvae import LanguageVAE
    from lmvae.cli import main

    dec = _pickled_copy(backbones, tmp_path, "decoder")
    enc = str(backbones.encoder("bert"))
    with pytest.raises(LoadError, match="pickled"):
        LanguageVAE.from_backbones(enc, str(dec), 8)
    vae = LanguageVAE.from_backbones(enc, str(dec), 8, allow_pickle=True)
    saved = vae.save_pretrained(tmp_path / "vae")
    with pytest.raises(LoadError, match="pickled"):
        LanguageVAE.from_pretrained(saved)
    LanguageVAE.from_pretrained(saved, allow_pickle=True)
    data = tmp_path / "d.txt"
    data.write_text("a b\nc d\n")
    argv = ["train", "--encoder", enc, "--decoder", str(dec), "--data", str(data)]
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--allow-pickle" in err
    assert not (tmp_path / "run").exists()
    assert main(["generate", str(saved), "-n", "1"]) == 2
    assert "pickled" in capsys.readouterr().err


def _train_and_reload(vae, tmp_path):
    from lmvae import LanguageVAE, TrainConfig, train

    texts = ["a cat sat on the mat", "the dog ran home", "birds sing at dawn", "rain fell"]
    config = TrainConfig(epochs=2, batch_size=2, lr=1e-2, progress=False, eval_decode_sentences=2)
    result = train(vae, texts, texts[:2], config, tmp_path / "run")
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in result.history)
    loaded = LanguageVAE.from_pretrained(result.best_dir)
    assert loaded.config.decoder.weights == vae.config.decoder.weights
    return loaded, texts


def test_a_decoder_held_in_bfloat16_trains_and_reloads_so(make_vae, tmp_path):
    vae = make_vae("bert", "llama-gqa", decoder_injection="prompt", decoder_weights="bfloat16")
    assert {p.dtype for p in vae.decoder.lm.parameters()} == {torch.bfloat16}
    assert vae.encoder.head.weight.dtype == torch.float32  # what trains stays fp32
    loaded, texts = _train_and_reload(vae, tmp_path)
    assert {p.dtype for p in loaded.decoder.lm.parameters()} == {torch.bfloat16}
    assert len(loaded.reconstruct(texts[:2])) == 2


@pytest.mark.parametrize("weights, layer", [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_a_quantised_decoder_trains_and_reloads_quantised(
    make_vae, tmp_path, caplog, weights, layer
):
    pytest.importorskip("bitsandbytes")
    plain = make_vae("bert", "llama-gqa", decoder_injection="prompt")
    vae = make_vae("bert", "llama-gqa", decoder_injection="prompt", decoder_weights=weights)
    linears = {type(m).__name__ for m in vae.decoder.lm.model.layers.modules()}
    assert layer in linears and "Linear" not in linears
    assert vae.decoder.spread_or_quantized and not plain.decoder.spread_or_quantized
    # The quantised decoder computes what the float one does, up to its rounding.
    batch = {**plain.decoder_inputs(["a cat sat on the mat"]), "features": None}
    enc = plain.encoder_inputs(["a cat sat on the mat"])
    batch.update(encoder_input_ids=enc["input_ids"], encoder_attention_mask=enc["attention_mask"])
    nll = [m.eval()(**batch, sample=False).tokens.nll.item() for m in (plain, vae)]
    assert nll[1] == pytest.approx(nll[0], rel=0.1)
    loaded, texts = _train_and_reload(vae, tmp_path)
    assert layer in {type(m).__name__ for m in loaded.decoder.lm.model.layers.modules()}
    assert len(loaded.reconstruct(texts[:2])) == 2
    assert not [r for r in caplog.records if "bitsandbytes" in r.name]  # a quiet run


def test_quantised_weights_without_bitsandbytes_name_the_package(make_vae, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real(name, *a),
    )
    from lmvae.errors import ConfigError

    with pytest.raises(ConfigError, match="pip install bitsandbytes"):
        make_vae("bert", "gpt2", decoder_weights="4bit")


def test_a_decoder_placed_by_a_device_map_trains(make_vae, tmp_path):
    vae = make_vae("bert", "llama-gqa", decoder_injection="prompt", device_map="auto")
    assert vae.decoder.lm.device.type == "cpu"  # no GPU here: the whole decoder on the CPU
    _train_and_reload(vae, tmp_path)


def test_placing_a_model_leaves_a_spread_decoder_where_it_is(make_vae):
    vae = make_vae("bert", "gpt2")
    vae.decoder.lm.hf_device_map = {"transformer.h.0": 0, "transformer.h.1": 1}  # as loaded
    assert vae.decoder.spread_or_quantized
    vae.place("meta")  # the heads and the encoder go; the decoder's hooks move activations
    assert vae.device.type == "meta" and vae.decoder.injector.kv.weight.is_meta
    assert not any(p.is_meta for p in vae.decoder.lm.parameters())
    assert "lm" in dict(vae.decoder.named_children())


def test_the_cli_holds_the_decoder_as_asked(backbones, tmp_path):
    import json

    from lmvae.cli import main

    data = tmp_path / "d.txt"
    data.write_text("a cat sat on the mat\nthe dog ran home\nbirds sing\nrain fell\n")
    argv = ["train", "--encoder", str(backbones.encoder("bert")), "--decoder"]
    argv += [str(backbones.decoder("llama-gqa")), "--data", str(data), "--epochs", "1"]
    argv += ["--decoder-weights", "bfloat16", "--gradient-checkpointing", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert saved["decoder"]["weights"] == "bfloat16"
