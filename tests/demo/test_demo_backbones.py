"""The tiny demo backbones: loadable folders, tokenizers, real pretraining, determinism, cache."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    BertModel,
    GPT2LMHeadModel,
)

from lmvae.demo import backbones
from lmvae.demo.backbones import (
    build_decoder_tokenizer,
    build_demo_backbones,
    build_encoder_tokenizer,
    cached_demo_backbones,
)
from lmvae.demo.corpus import load_demo_corpus


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [s.text for s in load_demo_corpus()[:300]]


@pytest.fixture(scope="module")
def built(texts, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("backbones")
    return build_demo_backbones(texts, out, seed=0, lm_epochs=2, mlm_epochs=1)


def _lm_loss(model, tok, texts: list[str]) -> float:
    eos = tok.eos_token_id
    rows = [[eos, *tok(t)["input_ids"], eos] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [eos] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100
    ).item()


def test_folders_load_with_auto_classes(built):
    enc_dir, dec_dir = built
    assert enc_dir.name == "encoder" and dec_dir.name == "decoder"
    encoder, enc_info = AutoModel.from_pretrained(enc_dir, output_loading_info=True)
    decoder, dec_info = AutoModelForCausalLM.from_pretrained(dec_dir, output_loading_info=True)
    for info in (enc_info, dec_info):  # every weight saved, nothing left to random init
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        assert not info["mismatched_keys"], info
    enc_tok = AutoTokenizer.from_pretrained(enc_dir)
    dec_tok = AutoTokenizer.from_pretrained(dec_dir)
    assert isinstance(encoder, BertModel)
    assert isinstance(decoder, GPT2LMHeadModel)
    assert (dec_dir / "model.safetensors").is_file() and (enc_dir / "model.safetensors").is_file()
    assert len(enc_tok) == encoder.config.vocab_size
    assert len(dec_tok) == decoder.config.vocab_size
    assert encoder.config.num_hidden_layers == 4 and encoder.config.hidden_size == 256
    assert decoder.config.n_layer == 4 and decoder.config.n_embd == 256
    assert decoder.config.eos_token_id == dec_tok.eos_token_id == 0
    manifest = json.loads((enc_dir.parent / "manifest.json").read_text())
    assert manifest["decoder"]["vocab_size"] == decoder.config.vocab_size
    assert manifest["n_texts"] == 300


def test_decoder_tokenizer_round_trip(built, texts):
    tok = AutoTokenizer.from_pretrained(built[1])
    assert tok.eos_token == tok.bos_token == tok.pad_token == "<|endoftext|>"
    assert tok.unk_token == "<unk>"
    for s in texts:
        ids = tok(s)["input_ids"]
        assert len(ids) == len(s.split())  # one token per word, no specials added
        assert tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == s
    eos = tok.eos_token_id
    ids = [eos, *tok(texts[0])["input_ids"], eos]
    assert tok.decode(ids, skip_special_tokens=True) == texts[0]
    assert tok("zebras like quantum physics")["input_ids"][2:] == [tok.unk_token_id] * 2


def test_encoder_tokenizer_adds_cls_sep_and_pads_with_zero(built, texts):
    tok = AutoTokenizer.from_pretrained(built[0])
    short = min(texts, key=lambda t: len(t.split()))
    n = len(short.split()) + 2
    batch = tok([short, texts[0] + " " + texts[1]], padding=True)
    first, second = batch["input_ids"]
    assert tok.pad_token_id == 0
    assert first[0] == second[0] == tok.cls_token_id
    assert first[n - 1] == tok.sep_token_id and set(first[n:]) == {0}
    assert second[-1] == tok.sep_token_id
    assert batch["attention_mask"][0] == [1] * n + [0] * (len(first) - n)
    for s in texts[:50]:
        ids = tok(s)["input_ids"]
        assert len(ids) == len(s.split()) + 2  # corpus words are whole tokens
        assert tok.decode(ids, skip_special_tokens=True) == s
    # unseen words fall back to characters instead of [UNK]
    assert tok.unk_token_id not in tok("a dog")["input_ids"]


def test_tokenizers_are_deterministic(texts):
    a, b = build_decoder_tokenizer(texts), build_decoder_tokenizer(list(reversed(texts)))
    assert a.get_vocab() == b.get_vocab()
    a, b = build_encoder_tokenizer(texts), build_encoder_tokenizer(list(reversed(texts)))
    assert a.get_vocab() == b.get_vocab()
    assert [a.convert_ids_to_tokens(i) for i in range(5)] == list(backbones.BERT_SPECIALS)


def test_pretrained_decoder_beats_an_untrained_one(built, texts):
    dec_dir = built[1]
    tok = AutoTokenizer.from_pretrained(dec_dir)
    trained = AutoModelForCausalLM.from_pretrained(dec_dir).eval()
    torch.manual_seed(123)
    untrained = GPT2LMHeadModel(trained.config).eval()
    sample = texts[:100]
    trained_loss, untrained_loss = _lm_loss(trained, tok, sample), _lm_loss(untrained, tok, sample)
    assert trained_loss < untrained_loss - 1.0
    manifest = json.loads((dec_dir.parent / "manifest.json").read_text())
    losses = manifest["decoder"]["lm_epoch_losses"]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert manifest["decoder"]["lm_final_loss"] == pytest.approx(
        _lm_loss(trained, tok, texts), abs=1e-3
    )


def test_build_is_deterministic_and_silent(texts, tmp_path, capfd):
    small = texts[:64]
    rng_state = torch.random.get_rng_state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        builds = [
            build_demo_backbones(small, tmp_path / name, seed=seed, lm_epochs=1, mlm_epochs=1)
            for name, seed in [("a", 0), ("b", 0), ("c", 1)]
        ]
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # no prints, logs or progress bars
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # caller's RNG untouched
    with warnings.catch_warnings(record=True) as caught_loading:
        warnings.simplefilter("always")
        AutoModel.from_pretrained(builds[0][0])
        AutoModelForCausalLM.from_pretrained(builds[0][1])
        AutoTokenizer.from_pretrained(builds[0][0])
        AutoTokenizer.from_pretrained(builds[0][1])
    assert [str(w.message) for w in caught + caught_loading] == []
    a, b, c = (json.loads((enc.parent / "manifest.json").read_text()) for enc, _ in builds)
    for part in ("encoder", "decoder"):
        assert a[part]["sha256"] == b[part]["sha256"]
        assert a[part]["sha256"] != c[part]["sha256"]


def test_progress_goes_to_stderr(texts, tmp_path, capfd):
    build_demo_backbones(texts[:32], tmp_path, lm_epochs=1, mlm_epochs=1, progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "demo backbones" in err


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        build_demo_backbones([], tmp_path)
    with pytest.raises(ValueError):
        build_demo_backbones(["a plant needs water"], tmp_path, lm_epochs=0)


@pytest.fixture
def fast_builder(monkeypatch):
    """Make the cache build with one epoch each, and count the builds."""
    calls: list[Path] = []
    real = backbones.build_demo_backbones

    def fast(texts, out_dir, *, seed=0, progress=False, **_):
        calls.append(Path(out_dir))
        return real(texts, out_dir, seed=seed, lm_epochs=1, mlm_epochs=1, progress=progress)

    monkeypatch.setattr(backbones, "build_demo_backbones", fast)
    return calls


def test_cache_builds_once_and_reuses(texts, tmp_path, fast_builder):
    small = texts[:48]
    enc, dec = cached_demo_backbones(small, cache_dir=tmp_path)
    assert len(fast_builder) == 1
    assert enc.parent == dec.parent and enc.parent.parent == tmp_path
    assert enc.parent.name.startswith("demo-backbones-")
    mtime = (dec / "model.safetensors").stat().st_mtime_ns
    assert cached_demo_backbones(small, cache_dir=tmp_path) == (enc, dec)
    assert len(fast_builder) == 1
    assert (dec / "model.safetensors").stat().st_mtime_ns == mtime
    manifest = json.loads((enc.parent / "manifest.json").read_text())
    assert manifest["cache_key"] == backbones.cache_key(small, 0)
    assert manifest["seconds"] > 0 and manifest["versions"]["torch"] == torch.__version__
    assert [p.name for p in tmp_path.iterdir()] == [enc.parent.name]  # no temporary left over
    AutoModelForCausalLM.from_pretrained(dec)
    # another seed or other texts is another entry
    other = cached_demo_backbones(small, cache_dir=tmp_path, seed=1)
    assert other[0].parent != enc.parent and len(fast_builder) == 2


def test_cache_location_from_environment(texts, tmp_path, monkeypatch, fast_builder):
    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "env-cache"))
    enc, _ = cached_demo_backbones(texts[:16])
    assert enc.parent.parent == tmp_path / "env-cache"


def test_interrupted_build_leaves_no_partial_cache(texts, tmp_path, monkeypatch):
    def broken(texts, out_dir, **_):
        (Path(out_dir) / "decoder").mkdir(parents=True)
        (Path(out_dir) / "decoder" / "half-written").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setattr(backbones, "build_demo_backbones", broken)
    with pytest.raises(KeyboardInterrupt):
        cached_demo_backbones(texts[:16], cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
