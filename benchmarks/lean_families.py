"""The lean CPU forward (lmvae.fastpath) against the transformers forward, family by family.

    .venv/bin/python benchmarks/lean_families.py --threads 2            # every family, ~2 min
    .venv/bin/python benchmarks/lean_families.py --smoke                # two tiny ones, seconds

Each covered decoder family gets a 4-layer, 256-wide model built from its config (random
weights, GQA where the family has it), a word-level tokenizer and a 4-layer BERT encoder of the
same width, trained with ``lmvae.train`` (its defaults: bf16 where the CPU has it) on the demo
corpus with ``decoder.fast_path`` off and on, interleaved; then the held-out sentences are
decoded greedily (bf16).  Reports the best training step (epochs 2+, encoder features cached)
and decoding time of each side.  The two paths sum bf16 in different orders, so the trained
models (and the lengths they decode to) differ slightly: decoding times compare like for
like only roughly.

Prints one markdown table; the last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

#: family -> config overrides (on top of the shared sizes); the quirks each family's lean
#: forward handles are in lmvae.fastpath.families.  Qwen2 (Llama's layout) is left out:
#: transformers 5 rebuilds a Qwen2 tokenizer from the saved vocabulary, which mangles the
#: word-level one built here.
FAMILIES = {
    "gpt2": {},
    "llama": {"num_key_value_heads": 2},
    "mistral": {"num_key_value_heads": 2},
    "gemma": {"num_key_value_heads": 2, "head_dim": 64},
    "gemma2": {"num_key_value_heads": 2, "head_dim": 64, "query_pre_attn_scalar": 64},
    "phi": {},
    "phi3": {"num_key_value_heads": 2},
    "qwen3": {"num_key_value_heads": 2, "head_dim": 64},
    "gemma3_text": {
        "num_key_value_heads": 2,
        "head_dim": 64,
        "query_pre_attn_scalar": 64,
        "sliding_window": 512,  # Gemma 3's local window; its 5:1 local / global pattern
        "layer_types": ["sliding_attention"] * 3 + ["full_attention"],
    },
}
SMOKE_FAMILIES = ["gpt2", "phi"]


def _sizes(family: str, width: int, layers: int) -> dict:
    if family == "gpt2":
        return {"n_embd": width, "n_layer": layers, "n_head": 4, "n_positions": 128}
    return {
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "max_position_embeddings": 128,
    }


def _build(family: str, texts: list[str], width: int, layers: int, out: Path) -> tuple[str, str]:
    """Encoder and decoder folders with random weights and corpus-trained tokenizers."""
    from transformers import AutoConfig, AutoModelForCausalLM, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained's shard bars, as lmvae itself does

    from lmvae.demo.backbones import build_decoder_tokenizer, build_encoder_tokenizer

    torch.manual_seed(0)
    enc_tok, dec_tok = build_encoder_tokenizer(texts), build_decoder_tokenizer(texts)
    encoder = BertModel(
        BertConfig(
            vocab_size=len(enc_tok),
            hidden_size=width,
            num_hidden_layers=layers,
            num_attention_heads=4,
            intermediate_size=4 * width,
            max_position_embeddings=128,
        ),
        add_pooling_layer=False,
    )
    ids = {
        "vocab_size": len(dec_tok),
        "bos_token_id": dec_tok.bos_token_id,
        "eos_token_id": dec_tok.eos_token_id,
        "pad_token_id": dec_tok.eos_token_id,
    }
    config = AutoConfig.for_model(
        family, **_sizes(family, width, layers), **FAMILIES[family], **ids
    )
    decoder = AutoModelForCausalLM.from_config(config)
    for model, tok, name in ((encoder, enc_tok, "encoder"), (decoder, dec_tok, family)):
        model.save_pretrained(out / name)
        tok.save_pretrained(out / name)
    return str(out / "encoder"), str(out / family)


def _run(encoder: str, decoder: str, fast: bool, train_s, eval_s, args) -> dict:
    from lmvae import LanguageVAE, TrainConfig, train

    model = LanguageVAE.from_backbones(
        encoder, decoder, 32, encoder_max_length=32, decoder_max_length=32
    )
    model.decoder.fast_path = fast
    config = TrainConfig(epochs=args.epochs, batch_size=32, progress=False, seed=0)
    history = train(model, train_s, [], config).history
    steps = -(-len(train_s) // 32)
    later = history[1:] or history
    start = time.perf_counter()
    model.reconstruct(eval_s, batch_size=32, bf16=True)
    return {
        "train_ms_per_step": 1000 * min(r["train_seconds"] for r in later) / steps,
        "decode_seconds": time.perf_counter() - start,
        "lean": model.decoder.lean_trunk() is not None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side")
    ap.add_argument("--smoke", action="store_true", help="two tiny families, few steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from lmvae.demo.corpus import load_demo_corpus

    texts = [r.text for r in load_demo_corpus()]
    width, layers, n_train, n_eval = 256, 4, 640, 200
    families = args.families.split(",")
    if args.smoke:
        width, layers, n_train, n_eval = 64, 2, 64, 32
        families, args.epochs, args.repeats = SMOKE_FAMILIES, 2, 1
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
    train_s, eval_s = texts[:n_train], texts[-n_eval:]
    rows = []
    with tempfile.TemporaryDirectory(prefix="lmvae-families-") as tmp:
        for family in families:
            encoder, decoder = _build(family, texts, width, layers, Path(tmp))
            runs: dict[bool, list[dict]] = {False: [], True: []}
            for _ in range(args.repeats):
                for fast in (False, True):
                    runs[fast].append(_run(encoder, decoder, fast, train_s, eval_s, args))
            best = {
                fast: {
                    "train_ms_per_step": min(r["train_ms_per_step"] for r in rs),
                    "decode_seconds": min(r["decode_seconds"] for r in rs),
                }
                for fast, rs in runs.items()
            }
            rows.append(
                {
                    "family": family,
                    "lean_used": all(r["lean"] for r in runs[True]),
                    "transformers": best[False],
                    "lean": best[True],
                }
            )
            print(f"  done: {family}", flush=True)
    title = "SMOKE RUN (tiny models; timings mean nothing)" if args.smoke else ""
    print(
        f"\n{title}\nthreads {args.threads}, {layers} layers x {width} wide, "
        f"{n_train} sentences x {args.epochs} epochs, batch 32, best of {args.repeats}"
    )
    print(
        "| family | lean path used | training ms/step: transformers | lean | speed-up "
        f"| decoding {n_eval} sentences (s): transformers | lean | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        t, lean = row["transformers"], row["lean"]
        print(
            f"| {row['family']} | {'yes' if row['lean_used'] else 'NO'} "
            f"| {t['train_ms_per_step']:.1f} | {lean['train_ms_per_step']:.1f} "
            f"| {t['train_ms_per_step'] / lean['train_ms_per_step']:.2f}x "
            f"| {t['decode_seconds']:.2f} | {lean['decode_seconds']:.2f} "
            f"| {t['decode_seconds'] / lean['decode_seconds']:.2f}x |"
        )
    print(json.dumps({"bench": "lean_families", "smoke": args.smoke, "rows": rows}))


if __name__ == "__main__":
    main()
