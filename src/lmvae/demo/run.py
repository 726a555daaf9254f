"""The offline demo: bundled corpus -> tiny pretrained LMs (cached) -> a trained VAE -> samples.

Needs no network: the backbones are built from configs and pretrained briefly on the bundled
corpus the first time, then reused from the cache.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lmvae.data import split_corpus
from lmvae.demo.backbones import cached_demo_backbones, default_cache_dir
from lmvae.demo.corpus import load_demo_corpus
from lmvae.model import LanguageVAE
from lmvae.train_config import TrainConfig
from lmvae.training import train

#: VAE settings of the demo; measured in docs/benchmarks.md.
DEMO_LATENT = 32
DEMO_EPOCHS = 16


#: Tiny backbones pretrained on the corpus they reconstruct: lmvae.presets "tiny".
DEMO_PRESET = "tiny"


def demo_run_dir() -> Path:
    """Where ``lmvae demo`` keeps its trained model (``best/``, ``last/``) by default."""
    return default_cache_dir() / "demo-run"


def build_demo_model(
    seed: int = 0, progress: bool = False
) -> tuple[LanguageVAE, list[str], list[str]]:
    """An untrained demo VAE over the cached tiny backbones, and the corpus split."""
    texts = [r.text for r in load_demo_corpus()]
    enc_dir, dec_dir = cached_demo_backbones(texts, seed=seed, progress=progress)
    model = LanguageVAE.from_backbones(
        str(enc_dir), str(dec_dir), DEMO_LATENT, encoder_layer=0, preset=DEMO_PRESET
    )
    train_texts, eval_texts = split_corpus(texts, 0.1, 300, seed)
    return model, train_texts, eval_texts


def run_demo(
    out_dir: Path | None = None, epochs: int | None = None, seed: int = 0, progress: bool = True
) -> Path:
    """Train the demo VAE and print reconstructions, prior samples and an interpolation."""
    say = lambda line="": print(line, flush=True)  # noqa: E731
    started = time.perf_counter()
    say("lmvae demo: tiny BERT encoder + tiny GPT-2 decoder, pretrained offline on bundled text")
    model, train_texts, eval_texts = build_demo_model(seed, progress)
    say(
        f"VAE: latent {model.latent_size}, {model.num_parameters(trainable_only=True):,} trainable "
        f"of {model.num_parameters():,} parameters; {len(train_texts)} train / "
        f"{len(eval_texts)} eval sentences"
    )
    out = out_dir or demo_run_dir()
    config = TrainConfig.from_preset(
        DEMO_PRESET, epochs=epochs or DEMO_EPOCHS, seed=seed, progress=progress
    )
    result = train(
        model, train_texts, eval_texts, config, out, log=lambda s: print(s, file=sys.stderr)
    )
    model = LanguageVAE.from_pretrained(result.best_dir or result.last_dir)
    final = result.history[result.best_epoch - 1]
    say(
        f"\ntrained in {result.seconds:.0f} s; held-out BLEU {final['eval_bleu']:.3f}, exact match "
        f"{final['eval_exact_match']:.3f}, KL {final['eval_kl']:.1f} nats, "
        f"active units {final['eval_active_units']:.0f}/{model.latent_size}"
    )
    say("\nreconstructions of held-out sentences (z = posterior mean, greedy):")
    examples = eval_texts[:6]
    for src, rec in zip(examples, model.reconstruct(examples), strict=True):
        say(f"  {src}\n    -> {rec}")
    say("\nsentences from the prior (z ~ N(0, I)):")
    for text in model.sample_prior(6, seed=seed):
        say(f"  {text}")
    start, end = eval_texts[0], eval_texts[1]
    say(f"\ninterpolation from {start!r} to {end!r}:")
    for i, text in enumerate(model.interpolate(start, end, steps=6)):
        say(f"  {i / 5:.1f}  {text}")
    say(f"\nmodel saved in {result.best_dir}; total {time.perf_counter() - started:.0f} s")
    say(f"try: lmvae reconstruct {result.best_dir} --data sentences.txt --format jsonl")
    say(f"     lmvae probe {result.best_dir} --data demo --out report/")
    return result.best_dir
