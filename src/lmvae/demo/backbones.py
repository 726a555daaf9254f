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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
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
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch.nn import functional as F
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    BertTokenizerFast,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

__all__ = [
    "BUILDER_VERSION",
    "DEFAULT_LM_EPOCHS",
    "DEFAULT_MLM_EPOCHS",
    "build_decoder_tokenizer",
    "build_demo_backbones",
    "build_encoder_tokenizer",
    "cached_demo_backbones",
]

#: Bump whenever a change to this module changes what a build produces (it keys the cache).
BUILDER_VERSION = "demo-backbones-1"
DEFAULT_LM_EPOCHS = 8
DEFAULT_MLM_EPOCHS = 3

EOS = "<|endoftext|>"
UNK = "<unk>"
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_POSITIONS = 128
BATCH_SIZE = 32
LM_LR = 1e-3
MLM_LR = 1e-3
WARMUP_FRACTION = 0.05
MLM_MASK_PROB = 0.3  # short templated sentences: more targets per step learn faster

ENCODER_CONFIG = {
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": MAX_POSITIONS,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
# No dropout: the backbones only have to fit the corpus briefly, and are used frozen (eval mode).
DECODER_CONFIG = {
    "n_embd": 256,
    "n_layer": 4,
    "n_head": 4,
    "n_positions": MAX_POSITIONS,
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
}


# --------------------------------------------------------------------------------------------
# Tokenizers


def build_encoder_tokenizer(texts: Sequence[str]) -> BertTokenizerFast:
    """A BERT WordPiece tokenizer whose vocabulary is built deterministically from ``texts``.

    Vocabulary: the five specials (``[PAD]`` = 0), sorted single characters, the same characters
    with ``##``, then every sorted whole word; any word of ``texts`` is therefore one token, and
    unseen words fall back to characters.
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = sorted({w for t in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t))})
    chars = sorted({c for w in words for c in w})
    vocab = list(BERT_SPECIALS) + chars + ["##" + c for c in chars]
    vocab += [w for w in words if w not in set(chars)]
    ids = {tok: i for i, tok in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MAX_POSITIONS,
    )


def build_decoder_tokenizer(texts: Sequence[str]) -> PreTrainedTokenizerFast:
    """A word-level GPT-2 style tokenizer: ``<|endoftext|>`` = 0, ``<unk>`` = 1, sorted words.

    It adds no special tokens itself, and ``decode(ids, skip_special_tokens=True)`` joins the
    words with single spaces, so ``decode(encode(s)) == s`` for any lowercase corpus sentence.
    """
    pre = pre_tokenizers.Whitespace()
    words = sorted({w for t in texts for w, _ in pre.pre_tokenize_str(t)} - {EOS, UNK})
    ids = {tok: i for i, tok in enumerate([EOS, UNK, *words])}
    tok = Tokenizer(models.WordLevel(ids, unk_token=UNK))
    tok.pre_tokenizer = pre
    # The WordPiece decoder joins tokens with single spaces (no corpus word starts with "##").
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=UNK,
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )


# --------------------------------------------------------------------------------------------
# Pretraining


def _batches(n: int, rng: random.Random) -> Iterator[list[int]]:
    """One epoch of shuffled batches of example indices.

    (Grouping similar lengths would save padding, but made the decoder learn clearly worse.)
    """
    order = list(range(n))
    rng.shuffle(order)
    for i in range(0, n, BATCH_SIZE):
        yield order[i : i + BATCH_SIZE]


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def _adamw(model: torch.nn.Module, lr: float) -> torch.optim.AdamW:
    """AdamW, with the fused CPU kernel where this torch build has one (about 10% faster)."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(model.parameters(), lr=lr)


def _schedule(opt: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to zero."""
    warmup = max(1, int(WARMUP_FRACTION * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False)


def _causal_lm_loss(model: GPT2LMHeadModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100
    )


def _train_decoder(
    texts: Sequence[str], tok: PreTrainedTokenizerFast, seed: int, epochs: int, progress: bool
) -> tuple[GPT2LMHeadModel, dict]:
    eos = tok.eos_token_id
    rows = [[eos, *tok(t, add_special_tokens=False)["input_ids"], eos] for t in texts]
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tok),
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        **DECODER_CONFIG,
    )
    model = GPT2LMHeadModel(config)
    opt = _adamw(model, LM_LR)
    steps_per_epoch = math.ceil(len(rows) / BATCH_SIZE)
    sched = _schedule(opt, epochs * steps_per_epoch)
    rng = random.Random(seed)
    losses = []
    model.train()
    with _progress_bar(epochs * steps_per_epoch, "decoder LM", progress) as bar:
        for _ in range(epochs):
            total, count = 0.0, 0
            for idx in _batches(len(rows), rng):
                ids, mask = _pad([rows[i] for i in idx], eos)
                loss = _causal_lm_loss(model, ids, mask)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                n_tok = int(mask[:, 1:].sum())
                total, count = total + loss.item() * n_tok, count + n_tok
                bar.update(1)
            losses.append(round(total / count, 4))
            bar.set_postfix(loss=losses[-1])
    model.eval()
    final = _eval_decoder(model, rows, eos)
    stats = {
        "lm_epoch_losses": losses,
        "lm_final_loss": round(final, 4),
        "params": sum(p.numel() for p in model.parameters()),
    }
    return model, stats


@torch.no_grad()
def _eval_decoder(model: GPT2LMHeadModel, rows: list[list[int]], eos: int) -> float:
    """Mean causal-LM loss per predicted token (eval mode, no dropout)."""
    total, count = 0.0, 0
    for i in range(0, len(rows), 256):
        ids, mask = _pad(rows[i : i + 256], eos)
        n_tok = int(mask[:, 1:].sum())
        total += _causal_lm_loss(model, ids, mask).item() * n_tok
        count += n_tok
    return total / max(1, count)


def _train_encoder(
    texts: Sequence[str], tok: BertTokenizerFast, seed: int, epochs: int, progress: bool
) -> tuple[BertModel, dict]:
    rows = [tok(t)["input_ids"] for t in texts]
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **ENCODER_CONFIG)
    model = BertForMaskedLM(config)
    opt = _adamw(model, MLM_LR)
    steps_per_epoch = math.ceil(len(rows) / BATCH_SIZE)
    sched = _schedule(opt, epochs * steps_per_epoch)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    special = torch.tensor(sorted(set(tok.all_special_ids)))
    first_word = len(BERT_SPECIALS)  # random replacements are drawn from non-special tokens
    losses = []
    model.train()
    with _progress_bar(epochs * steps_per_epoch, "encoder MLM", progress) as bar:
        for _ in range(epochs):
            total, count = 0.0, 0
            for idx in _batches(len(rows), rng):
                ids, mask = _pad([rows[i] for i in idx], tok.pad_token_id)
                candidates = ~torch.isin(ids, special)
                chosen = (torch.rand(ids.shape, generator=gen) < MLM_MASK_PROB) & candidates
                if not chosen.any():
                    chosen = candidates & (torch.cumsum(candidates.long(), 1) == 1)
                labels = ids.masked_fill(~chosen, -100)
                roll = torch.rand(ids.shape, generator=gen)
                random_ids = torch.randint(first_word, len(tok), ids.shape, generator=gen)
                inputs = ids.clone()
                inputs[chosen & (roll < 0.8)] = tok.mask_token_id
                swap = chosen & (roll >= 0.8) & (roll < 0.9)
                inputs[swap] = random_ids[swap]
                logits = model(input_ids=inputs, attention_mask=mask).logits
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                n_tok = int(chosen.sum())
                total, count = total + loss.item() * n_tok, count + n_tok
                bar.update(1)
            losses.append(round(total / count, 4))
            bar.set_postfix(loss=losses[-1])
    # Save a complete BertModel (with a seeded, untrained pooler) so AutoModel loads it without
    # missing-weight warnings; the masked-LM head is dropped.
    torch.manual_seed(seed + 1)
    encoder = BertModel(config)
    missing, unexpected = encoder.load_state_dict(model.bert.state_dict(), strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise RuntimeError(f"encoder weights do not match: {missing} {unexpected}")
    encoder.eval()
    stats = {"mlm_epoch_losses": losses, "params": sum(p.numel() for p in encoder.parameters())}
    return encoder, stats


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
    decoder, dec_stats = _train_decoder(texts, dec_tok, seed, lm_epochs, progress)
    with _no_hf_progress_bars():
        decoder.save_pretrained(dec_dir)
    dec_tok.save_pretrained(dec_dir)
    _check_tokenizer(dec_dir, decoder.config.vocab_size)
    t1 = time.perf_counter()

    enc_tok = build_encoder_tokenizer(texts)
    encoder, enc_stats = _train_encoder(texts, enc_tok, seed, mlm_epochs, progress)
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
