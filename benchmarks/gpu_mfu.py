"""lmvae's training throughput, peak memory and model-FLOPs utilisation at LM sizes (issue 6).

    # on an NVIDIA H200 (see /work/.library/device): every size, bf16
    python benchmarks/gpu_mfu.py --sizes gpt2-small,llama-1b,llama-3b --batch 1024
    # anywhere: a smoke run on tiny stand-ins (CPU is fine; no timing means anything)
    python benchmarks/gpu_mfu.py --smoke

Models are built from configs with random weights -- a BERT-base-size encoder and decoders of
GPT-2-small, Llama-3.2-1B and Llama-3.2-3B sizes -- and trained with ``lmvae.train`` on
synthetic sentences of about ``--tokens`` decoder tokens, the library's own recipe (bf16 on a
GPU, chunked cross-entropy from the frozen head, fused AdamW).  Epoch 1 fills the encoder
feature cache; the figures are from the later epochs, as in training proper.

MFU counts 4 x decoder non-embedding parameters x target tokens per step (forward, plus the
backward for activation gradients through the frozen decoder) against the card's dense bf16
peak, read from its name (``--peak-tflops`` overrides).  Peak GPU memory is reported beside
the size one step's full-vocabulary fp32 logits would have, which the chunked loss never
makes.  A 7B decoder: ``--sizes llama-7b --decoder-weights bfloat16 --gradient-checkpointing``.
Prints one markdown table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

#: name -> (family, config overrides); the sizes of the published models.
DECODERS = {
    "gpt2-small": ("gpt2", {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257}),
    "llama-1b": (
        "llama",
        {
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_hidden_layers": 16,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "vocab_size": 128256,
            "tie_word_embeddings": True,
        },
    ),
    "llama-3b": (
        "llama",
        {
            "hidden_size": 3072,
            "intermediate_size": 8192,
            "num_hidden_layers": 28,
            "num_attention_heads": 24,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "vocab_size": 128256,
            "tie_word_embeddings": True,
        },
    ),
    "llama-7b": (  # Llama-2-7B: with --decoder-weights bfloat16 (13 GB) on one 80 GB GPU
        "llama",
        {
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": 32000,
        },
    ),
    # --smoke stand-ins
    "gpt2-tiny": ("gpt2", {"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 1000}),
    "llama-tiny": (
        "llama",
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 1000,
        },
    ),
}
ENCODERS = {
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    "bert-tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
    },
}


def _sentences(n: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(500)]
    return [" ".join(rng.choice(vocab) for _ in range(words)) for _ in range(n)]


#: Dense bf16 peak TFLOP/s by device name (the first name found in torch's device name).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L4": 121.0}


def peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak from its name, or None for a card not in the table."""
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def _backbones(
    encoder: str, decoder: str, texts: list[str], device: torch.device, weights: str = "float32"
):
    """Random-weight backbones from configs, with tokenizers trained on the texts."""
    from transformers import (
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    from lmvae.backbones import freeze, fuse_activations
    from lmvae.demo.backbones import build_decoder_tokenizer, build_encoder_tokenizer

    enc_tok, dec_tok = build_encoder_tokenizer(texts), build_decoder_tokenizer(texts)
    torch.manual_seed(0)
    enc_cfg = BertConfig(vocab_size=max(len(enc_tok), 30522), **ENCODERS[encoder])
    enc = BertModel(enc_cfg, add_pooling_layer=False)
    family, overrides = DECODERS[decoder]
    ids = {"bos_token_id": dec_tok.bos_token_id, "eos_token_id": dec_tok.eos_token_id}
    # Built where it runs and in the dtype it is held in (DecoderConfig.weights): a 7B decoder
    # never exists in fp32.
    default = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, weights))
    try:
        with torch.device(device):
            if family == "gpt2":
                dec = GPT2LMHeadModel(GPT2Config(n_positions=1024, **overrides, **ids))
            else:
                config = LlamaConfig(max_position_embeddings=2048, **overrides, **ids)
                dec = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    fuse_activations(dec)
    return freeze(enc).to(device), enc_tok, freeze(dec), dec_tok


def _non_embedding_params(lm) -> int:
    embeddings = {
        id(p)
        for m in (lm.get_input_embeddings(), lm.get_output_embeddings())
        for p in m.parameters()
    }
    pos = getattr(getattr(lm, "transformer", None), "wpe", None)
    if pos is not None:
        embeddings |= {id(p) for p in pos.parameters()}
    return sum(p.numel() for p in lm.parameters() if id(p) not in embeddings)


def run(args, encoder: str, decoder: str, device: torch.device) -> dict:
    from lmvae import LanguageVAE, TrainConfig, train
    from lmvae.config import VAEConfig
    from lmvae.data import tokenize_decoder

    texts = _sentences(args.batch * args.steps, args.tokens, seed=0)
    enc, enc_tok, dec, dec_tok = _backbones(encoder, decoder, texts, device, args.decoder_weights)
    config = VAEConfig.create(
        encoder,
        decoder,
        args.latent,
        encoder_max_length=64,
        decoder_max_length=64,
        decoder_weights=args.decoder_weights,
    )
    model = LanguageVAE(config, enc, enc_tok, dec, dec_tok).to(device)
    tokens = sum(len(r) + 1 for r in tokenize_decoder(dec_tok, texts, 64))  # + EOS targets
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch,
        progress=False,
        eval_decode_sentences=0,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    start = time.perf_counter()
    result = train(model, texts, [], train_config)
    wall = time.perf_counter() - start
    later = [r["train_seconds"] for r in result.history[1:]] or [result.history[0]["train_seconds"]]
    seconds = sum(later) / len(later)
    flops = 4 * _non_embedding_params(dec) * tokens / seconds
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    # What one step's full-vocabulary fp32 logits would take: the chunked loss never makes them.
    logits = tokens / args.steps * dec.config.vocab_size * 4 / 2**30
    return {
        "decoder_weights": args.decoder_weights,
        "gradient_checkpointing": args.gradient_checkpointing,
        "full_fp32_logits_gib": logits,
        "encoder": encoder,
        "decoder": decoder,
        "decoder_non_embedding_params": _non_embedding_params(dec),
        "batch": args.batch,
        "tokens_per_step": tokens / args.steps,
        "tokens_per_s": tokens / seconds,
        "sentences_per_s": len(texts) / seconds,
        "tflops": flops / 1e12,
        "mfu": flops / (args.peak_tflops * 1e12),
        "peak_gpu_memory_gib": peak,
        "wall_seconds": wall,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="gpt2-small,llama-1b,llama-3b")
    ap.add_argument("--encoder", default="bert-base")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=8, help="training steps per epoch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=30, help="words per synthetic sentence")
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument(
        "--peak-tflops", type=float, default=None, help="default: from the device's name"
    )
    ap.add_argument("--decoder-weights", default="float32", help="float32 or bfloat16")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny stand-ins, a few steps, any device")
    args = ap.parse_args()
    if args.smoke:
        args.sizes, args.encoder = "gpt2-tiny,llama-tiny", "bert-tiny"
        args.batch, args.steps, args.epochs, args.tokens = 8, 2, 2, 6
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.peak_tflops is None:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
        known = peak_tflops(name)
        if device.type == "cuda" and known is None:
            raise SystemExit(f"no bf16 peak known for {name!r}: pass --peak-tflops")
        args.peak_tflops = known or PEAK_BF16_TFLOPS["H200"]  # CPU: a smoke run, any figure
    rows = [run(args, args.encoder, name, device) for name in args.sizes.split(",")]
    print(
        f"\n{rows[0]['device']}, encoder {args.encoder}, batch {args.batch}, ~{args.tokens} "
        f"words a sentence, MFU against {args.peak_tflops:g} TFLOP/s"
        + (" -- SMOKE RUN: the figures mean nothing" if args.smoke else "")
    )
    print(
        "| decoder | non-embedding params | tokens/s | sentences/s | TFLOP/s | MFU "
        "| peak GPU memory (GiB) | one step's fp32 logits (GiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        peak = f"{r['peak_gpu_memory_gib']:.1f}" if r["peak_gpu_memory_gib"] is not None else "n/a"
        print(
            f"| {r['decoder']} | {r['decoder_non_embedding_params'] / 1e6:.1f} M | "
            f"{r['tokens_per_s']:,.0f} | {r['sentences_per_s']:,.0f} | {r['tflops']:.1f} | "
            f"{100 * r['mfu']:.1f} % | {peak} | {r['full_fp32_logits_gib']:.1f} |"
        )
    print(json.dumps({"bench": "gpu_mfu", "smoke": args.smoke, "rows": rows}))


if __name__ == "__main__":
    main()
