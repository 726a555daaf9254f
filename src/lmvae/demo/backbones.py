"""Tiny frozen backbones for the offline demo and the tests, built from configs with no network.

:func:`build_demo_backbones` makes two folders that ``transformers`` loads like any hub model:

* an encoder: a 4-layer BERT with a WordPiece tokenizer whose vocabulary is built from the texts
  (special tokens, characters, ``##`` characters and every whole word, sorted), briefly pretrained
  with masked-LM and saved as a plain ``BertModel``;
* a decoder: a 4-layer GPT-2 with a word-level tokenizer (one token per corpus word), briefly
  pretrained as a causal LM on ``<|endoftext|> words <|endoftext|>`` so that a frozen decoder
  already speaks the language of the corpus.

Builds are deterministic: the vocabularies are sorted (the ``tokenizers`` WordPiece *trainer*
breaks ties differently from process to process, so it is not used), and every random draw comes
from generators seeded by ``seed``.  With the same torch build and thread count two builds give
bit-identical weights.  :func:`cached_demo_backbones` keeps finished builds in a cache folder.

The tokenizers, model configs and pretraining loops are in :mod:`lmvae.demo.pretraining`; this
module builds, saves and caches (and re-exports the tokenizer builders).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import tokenizers
import torch
import transformers
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

# The constants and tokenizer builders are also re-exported: they lived here before the
# tokenizers, configs and loops moved to .pretraining (tests and benchmarks import them from here).
from .pretraining import (  # noqa: F401
    BATCH_SIZE,
    BERT_SPECIALS,
    DECODER_CONFIG,
    ENCODER_CONFIG,
    EOS,
    LM_LR,
    MAX_POSITIONS,
    MLM_LR,
    MLM_MASK_PROB,
    UNK,
    WARMUP_FRACTION,
    build_decoder_tokenizer,
    build_encoder_tokenizer,
    train_decoder,
    train_encoder,
)

__all__ = [
    "BUILDER_VERSION",
    "DEFAULT_LM_EPOCHS",
    "DEFAULT_MLM_EPOCHS",
    "build_decoder_tokenizer",
    "build_demo_backbones",
    "build_encoder_tokenizer",
    "cached_demo_backbones",
]

#: Bump whenever a change to this module or to :mod:`lmvae.demo.pretraining` changes what a
#: build produces (it keys the cache).
BUILDER_VERSION = "demo-backbones-1"
DEFAULT_LM_EPOCHS = 8
DEFAULT_MLM_EPOCHS = 3

# --------------------------------------------------------------------------------------------
# Builds


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def _no_hf_progress_bars() -> Iterator[None]:
    """Silence the "Writing model shards" bar of ``save_pretrained`` (restored afterwards)."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    if was_enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _versions() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }


def _check_tokenizer(folder: Path, expected_vocab: int) -> None:
    """Reload a saved tokenizer and make sure the vocabulary survived the round trip."""
    loaded = AutoTokenizer.from_pretrained(folder)
    if len(loaded) != expected_vocab:
        raise RuntimeError(
            f"tokenizer saved in {folder} reloads with {len(loaded)} tokens, not {expected_vocab}"
        )


def build_demo_backbones(
    texts: list[str],
    out_dir: str | Path,
    *,
    seed: int = 0,
    lm_epochs: int = DEFAULT_LM_EPOCHS,
    mlm_epochs: int = DEFAULT_MLM_EPOCHS,
    progress: bool = False,
) -> tuple[Path, Path]:
    """Build and pretrain the demo encoder and decoder; return ``(encoder_dir, decoder_dir)``.

    Writes ``out_dir/encoder`` (``AutoModel`` + ``AutoTokenizer``), ``out_dir/decoder``
    (``AutoModelForCausalLM`` + ``AutoTokenizer``) and ``out_dir/manifest.json`` (losses, sizes,
    seconds, versions, weight hashes).  Prints nothing unless ``progress`` is true.
    """
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("build_demo_backbones needs at least one text")
    if lm_epochs < 1 or mlm_epochs < 1:
        raise ValueError("lm_epochs and mlm_epochs must be >= 1")
    out = Path(out_dir)
    enc_dir, dec_dir = out / "encoder", out / "decoder"
    enc_dir.mkdir(parents=True, exist_ok=True)
    dec_dir.mkdir(parents=True, exist_ok=True)
    if progress:
        print(f"lmvae: building demo backbones from {len(texts)} texts in {out}", file=sys.stderr)

    # Seeding happens inside fork_rng, so the caller's global torch RNG state is left alone.
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        manifest = _build(texts, enc_dir, dec_dir, seed, lm_epochs, mlm_epochs, progress)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    if progress:
        print(
            f"lmvae: demo backbones ready in {manifest['seconds']:.1f} s (decoder LM loss "
            f"{manifest['decoder']['lm_final_loss']:.3f}, encoder MLM loss "
            f"{manifest['encoder']['mlm_epoch_losses'][-1]:.3f})",
            file=sys.stderr,
        )
    return enc_dir, dec_dir


def _build(
    texts: list[str],
    enc_dir: Path,
    dec_dir: Path,
    seed: int,
    lm_epochs: int,
    mlm_epochs: int,
    progress: bool,
) -> dict:
    """Train and save both backbones; return the manifest."""
    t0 = time.perf_counter()
    dec_tok = build_decoder_tokenizer(texts)
    decoder, dec_stats = train_decoder(texts, dec_tok, seed, lm_epochs, progress)
    with _no_hf_progress_bars():
        decoder.save_pretrained(dec_dir)
    dec_tok.save_pretrained(dec_dir)
    _check_tokenizer(dec_dir, decoder.config.vocab_size)
    t1 = time.perf_counter()

    enc_tok = build_encoder_tokenizer(texts)
    encoder, enc_stats = train_encoder(texts, enc_tok, seed, mlm_epochs, progress)
    with _no_hf_progress_bars():
        encoder.save_pretrained(enc_dir)
    enc_tok.save_pretrained(enc_dir)
    _check_tokenizer(enc_dir, encoder.config.vocab_size)
    t2 = time.perf_counter()

    manifest = {
        "builder": BUILDER_VERSION,
        "seed": seed,
        "n_texts": len(texts),
        "texts_sha256": hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest(),
        "threads": torch.get_num_threads(),
        "versions": _versions(),
        "decoder": {
            "dir": dec_dir.name,
            "architecture": "GPT2LMHeadModel",
            "vocab_size": decoder.config.vocab_size,
            "lm_epochs": lm_epochs,
            **dec_stats,
            "seconds": round(t1 - t0, 2),
            "sha256": _sha256(dec_dir / "model.safetensors"),
        },
        "encoder": {
            "dir": enc_dir.name,
            "architecture": "BertModel",
            "vocab_size": encoder.config.vocab_size,
            "mlm_epochs": mlm_epochs,
            **enc_stats,
            "seconds": round(t2 - t1, 2),
            "sha256": _sha256(enc_dir / "model.safetensors"),
        },
        "seconds": round(t2 - t0, 2),
    }
    return manifest


def _major_minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def cache_key(texts: Sequence[str], seed: int = 0) -> str:
    """The sha256 naming a cached build of ``texts`` with ``seed`` and this builder."""
    payload = {
        "texts": list(texts),
        "seed": seed,
        "builder": BUILDER_VERSION,
        "lm_epochs": DEFAULT_LM_EPOCHS,
        "mlm_epochs": DEFAULT_MLM_EPOCHS,
        "torch": _major_minor(torch.__version__),
        "transformers": _major_minor(transformers.__version__),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    """``$LMVAE_CACHE`` if set, else ``~/.cache/lmvae``."""
    return Path(os.environ.get("LMVAE_CACHE") or "~/.cache/lmvae").expanduser()


def cached_demo_backbones(
    texts: list[str],
    *,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Path, Path]:
    """Like :func:`build_demo_backbones` with default epochs, but built once and then reused.

    The build goes to ``<cache>/demo-backbones-<key>``, where the key hashes the texts, the seed,
    :data:`BUILDER_VERSION` and the torch / transformers versions.  It is made in a temporary
    sibling folder and renamed into place, so an interrupted build never leaves a partial cache.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = cache_key(texts, seed)
    final = root / f"demo-backbones-{key[:24]}"
    if (final / "manifest.json").is_file():
        return final / "encoder", final / "decoder"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished entry is an ordinary folder
    try:
        build_demo_backbones(list(texts), tmp, seed=seed, progress=progress)
        manifest_path = tmp / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["cache_key"] = key
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if final.exists() and not (final / "manifest.json").is_file():
            shutil.rmtree(final)  # not made by us: an atomic rename never leaves it incomplete
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "manifest.json").is_file():  # not a concurrent build that won
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final / "encoder", final / "decoder"
