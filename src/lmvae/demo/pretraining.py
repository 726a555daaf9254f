"""What the demo backbones are made of: their tokenizers, model configs and pretraining loops.

Used by :mod:`lmvae.demo.backbones`, which builds, saves and caches the two backbones (and
re-exports the tokenizer builders).  Everything here feeds the built weights: a change that alters
what a build produces must bump :data:`lmvae.demo.backbones.BUILDER_VERSION`.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterator, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch.nn import functional as F
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertModel,
    BertTokenizerFast,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

__all__ = [
    "BERT_SPECIALS",
    "DECODER_CONFIG",
    "ENCODER_CONFIG",
    "EOS",
    "MAX_POSITIONS",
    "UNK",
    "build_decoder_tokenizer",
    "build_encoder_tokenizer",
    "train_decoder",
    "train_encoder",
]

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


def train_decoder(
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


def train_encoder(
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
