"""Speed and memory on real pretrained models: lmvae against its frozen decoder's own ceilings.

all-MiniLM-L6-v2 -> SmolLM2-135M-Instruct (GGUF; ``--decoder`` takes another decoder folder or
.gguf file) on WordNet glosses (lmvae.wordnet), identical batches for every row:

- lmvae training: sentences/s and decoder tokens/s of the second epoch (encoder features
  cached, as in every epoch after the first), peak RSS;
- ceiling (a): the same frozen decoder's forward + backward with its LM head and
  cross-entropy, gradients to the input embeddings only, in lmvae's precision, attention
  implementation and padding; once over lmvae's whole sequence (the z positions of the soft
  prompt included, embeddings standing in for them) and once over the sentence tokens alone;
- ceiling (b): transformers' defaults on the tokens (fp32, the model's default attention,
  padded batches);
- decoding: lmvae's greedy reconstructions from posterior means against the decoder's own
  ``generate()`` with a KV cache, forced to lmvae's output length per batch;
- a plain bf16 matmul's FLOP/s on this machine.

Every row runs in a subprocess of its own, one after another, so peak RSS is clean::

    .venv/bin/python benchmarks/real_models.py --threads 2 --tag cpu2

Writes benchmarks/results/real_models/TAG.json (or --results DIR/TAG.json) and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "real_models"
PARTS = ("matmul", "lmvae", "ceiling_a_prompt", "ceiling_a_tokens", "ceiling_b", "decode")


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _setup(args):
    """The VAE, the training texts and their decoder batches exactly as lmvae collates them."""
    from lmvae import LanguageVAE
    from lmvae.demo.real import real_backbones
    from lmvae.wordnet import build_corpus

    encoder, decoder = real_backbones()
    vae = LanguageVAE.from_backbones(
        encoder,
        args.decoder or decoder,
        latent_size=args.latent_size,
        seed=0,
        decoder_weights=args.decoder_weights,
    )
    texts = build_corpus(seed=0).train[: args.sentences]
    return vae, texts


def _batches(vae, texts, batch_size: int, pad_multiple: int):
    rows = vae.codec.decoder_rows(texts)
    return [
        vae.codec.collate(rows[i : i + batch_size], pad_multiple)
        for i in range(0, len(rows), batch_size)
    ]


def part_matmul(args) -> dict:
    n = 2048
    a, b = torch.randn(n, n, dtype=torch.bfloat16), torch.randn(n, n, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    seconds = time.perf_counter() - start
    return {"bf16_matmul_gflops": round(2 * n**3 * reps / seconds / 1e9, 1)}


def part_lmvae(args, compiled: bool = False, packed: bool = False) -> dict:
    """lmvae's training on padded batches (``pack=False``, as the ceilings are) unless
    ``packed``; packing is lmvae's default since session 10."""
    from lmvae import TrainConfig, train

    vae, texts = _setup(args)
    config = TrainConfig(
        epochs=2,
        batch_size=args.batch_size,
        eval_fraction=0.0,
        progress=False,
        seed=0,
        lr_schedule="constant",
        compile=compiled,
        pack=packed,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    result = train(vae, texts, (), config)
    epoch = result.history[-1]
    tokens = sum(len(r) + 1 for r in vae.codec.decoder_rows(texts))  # BOS, as the ceilings
    return {
        "sents_per_s": round(epoch["train_sents_per_s"], 2),
        "tokens_per_s": round(tokens / epoch["train_seconds"], 1),
        "seconds": round(epoch["train_seconds"], 1),
        "first_epoch_sents_per_s": round(result.history[0]["train_sents_per_s"], 2),
        "peak_rss_mb": _peak_rss_mb(),
    }


def part_decoder_nll(args) -> dict:
    """Not in the default parts: the frozen decoder's own NLL per held-out sentence
    (``[BOS] x [EOS]``, no latent) and the bytes of its weights, as ``--decoder-weights``
    holds them: what 8-bit or 4-bit weights cost the LM itself."""
    from lmvae.evaluation import decoder_nll
    from lmvae.wordnet import build_corpus

    vae, _ = _setup(args)
    texts = build_corpus(seed=0).heldout[: args.heldout]
    start = time.perf_counter()
    nll, _ = decoder_nll(vae, texts, args.batch_size)  # what lmvae evaluate reports
    return {
        "nll_per_sentence": round(float(nll.mean()), 2),
        "sentences": len(texts),
        "seconds": round(time.perf_counter() - start, 1),
        "weights_mb": round(vae.decoder.lm.get_memory_footprint() / 2**20, 1),
        "peak_rss_mb": _peak_rss_mb(),
    }


def as_safetensors(gguf: str, folder: Path) -> str:
    """A GGUF decoder written out as a safetensors folder (bitsandbytes quantises only those),
    once: transformers dequantises the file and refuses to save a GGUF-loaded model itself."""
    from safetensors.torch import save_model

    from lmvae.backbones import load_decoder
    from lmvae.config import BackboneRef

    if not (folder / "model.safetensors").exists():
        lm, tok = load_decoder(BackboneRef(gguf), weights="bfloat16")
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config  # the GGUF marker: the weights are plain now
        lm.config.save_pretrained(folder)
        tok.save_pretrained(folder)
        save_model(lm, str(folder / "model.safetensors"))  # tied embeddings saved once
    return str(folder)


def _ceiling(args, lmvae_precision: bool, prompt: bool, compiled: bool = False) -> dict:
    """Forward + backward of the frozen decoder alone, gradients to the input embeddings;
    ``compiled``: through torch.compile(dynamic=True), its compile time reported apart."""
    from lmvae.precision import cpu_bf16_decoder, default_mixed_precision

    vae, texts = _setup(args)
    lm = vae.decoder.lm
    bf16 = lmvae_precision and default_mixed_precision(torch.device("cpu")) == "bf16"
    batches = _batches(vae, texts, args.batch_size, 4 if bf16 else 1)
    slots = vae.decoder.num_slots if prompt else 0
    embed = lm.get_input_embeddings()
    context = cpu_bf16_decoder(lm) if bf16 else torch.autocast("cpu", enabled=False)

    def step(batch) -> None:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        inputs = embed(ids).detach()
        labels = torch.where(mask > 0, ids, -100)
        if slots:
            extra = torch.randn(ids.shape[0], slots, inputs.shape[-1]) * inputs.std()
            inputs = torch.cat([extra, inputs], 1)
            mask = torch.cat([torch.ones(ids.shape[0], slots, dtype=mask.dtype), mask], 1)
            labels = torch.cat([torch.full((ids.shape[0], slots), -100), labels], 1)
        inputs = inputs.to(torch.bfloat16 if bf16 else torch.float32).requires_grad_(True)
        loss = model(inputs_embeds=inputs, attention_mask=mask, labels=labels).loss
        loss.backward()

    model = torch.compile(lm, dynamic=True) if compiled else lm
    with context:
        start = time.perf_counter()
        for batch in batches[:2]:  # warm-up: kernels, packed weights, compilation
            step(batch)
        warmup = time.perf_counter() - start
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        seconds = time.perf_counter() - start
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    return {
        "sents_per_s": round(len(texts) / seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "seconds": round(seconds, 1),
        "warmup_seconds": round(warmup, 1),
        "peak_rss_mb": _peak_rss_mb(),
    }


def part_lmvae_compiled(args) -> dict:
    """Not in the default parts: ``--parts lmvae,lmvae_compiled`` (TrainConfig.compile; the
    first epoch holds the compilation, the second is timed)."""
    return part_lmvae(args, compiled=True)


def part_lmvae_packed(args) -> dict:
    """Not in the default parts: ``--parts lmvae,lmvae_packed`` (padding-free batches,
    lmvae.packing)."""
    return part_lmvae(args, packed=True)


def part_lmvae_packed_compiled(args) -> dict:
    """Not in the default parts: packed and compiled."""
    return part_lmvae(args, compiled=True, packed=True)


def part_ceiling_a_prompt_compiled(args) -> dict:
    """Not in the default parts: ``--parts ceiling_a_prompt,ceiling_a_prompt_compiled``."""
    return _ceiling(args, lmvae_precision=True, prompt=True, compiled=True)


def part_ceiling_a_prompt(args) -> dict:
    return _ceiling(args, lmvae_precision=True, prompt=True)


def part_ceiling_a_tokens(args) -> dict:
    return _ceiling(args, lmvae_precision=True, prompt=False)


def part_ceiling_b(args) -> dict:
    return _ceiling(args, lmvae_precision=False, prompt=False)


def part_decode(args) -> dict:
    """lmvae's greedy decoding from posterior means, then generate() forced to its lengths."""
    vae, texts = _setup(args)
    texts = texts[: args.decode_sentences]
    bf16 = torch.device("cpu").type == "cpu" and _fast_bf16()
    z = vae.encode(texts)
    vae.decode_ids(z[:8], bf16=bf16, batch_size=args.batch_size)  # warm-up
    start = time.perf_counter()
    rows = vae.decode_ids(z, bf16=bf16, batch_size=args.batch_size)
    ours = time.perf_counter() - start
    lm = vae.decoder.lm
    bos = vae.codec.bos_id
    generated = 0
    from lmvae.precision import frozen_weights_in

    context = frozen_weights_in(lm, torch.bfloat16) if bf16 else contextlib.nullcontext()
    with context, torch.no_grad():
        start = time.perf_counter()
        for i in range(0, len(rows), args.batch_size):
            length = max(len(r) for r in rows[i : i + args.batch_size]) + 1  # EOS included
            n = len(rows[i : i + args.batch_size])
            out = lm.generate(
                torch.full((n, 1), bos),
                attention_mask=torch.ones(n, 1, dtype=torch.long),
                min_new_tokens=length,
                max_new_tokens=length,
                do_sample=False,
                pad_token_id=vae.codec.eos_id,
            )
            generated += n * (out.shape[1] - 1)
        theirs = time.perf_counter() - start
    tokens = sum(len(r) + 1 for r in rows)
    return {
        "lmvae_sents_per_s": round(len(texts) / ours, 2),
        "lmvae_tokens_per_s": round(tokens / ours, 1),
        "generate_sents_per_s": round(len(texts) / theirs, 2),
        "generate_tokens_per_s": round(generated / theirs, 1),
        "bf16": bf16,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _fast_bf16() -> bool:
    from lmvae.precision import cpu_has_fast_bf16

    return cpu_has_fast_bf16()


def _run_part(name: str, argv: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--part", name, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    if out.returncode:
        raise SystemExit(f"part {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(record: dict) -> str:
    lm, a, a0, b = (
        record[k] for k in ("lmvae", "ceiling_a_prompt", "ceiling_a_tokens", "ceiling_b")
    )
    d = record["decode"]
    lines = [
        "| row | sentences/s | tokens/s | peak RSS (MB) | lmvae / row |",
        "|---|---:|---:|---:|---:|",
        f"| lmvae training (epoch 2) | {lm['sents_per_s']} | {lm['tokens_per_s']} "
        f"| {lm['peak_rss_mb']} | 1.00 |",
    ]
    for name, row in (
        ("ceiling (a): decoder fwd+bwd, lmvae's sequence (soft prompt + tokens)", a),
        ("ceiling (a): decoder fwd+bwd, tokens only", a0),
        ("ceiling (b): transformers defaults (fp32, default attention)", b),
    ):
        ratio = lm["sents_per_s"] / row["sents_per_s"]
        lines.append(
            f"| {name} | {row['sents_per_s']} | {row['tokens_per_s']} | {row['peak_rss_mb']} "
            f"| {ratio:.2f} |"
        )
    ratio = d["lmvae_sents_per_s"] / d["generate_sents_per_s"]
    lines += [
        f"| lmvae greedy decoding | {d['lmvae_sents_per_s']} | {d['lmvae_tokens_per_s']} "
        f"| {d['peak_rss_mb']} | 1.00 |",
        f"| generate() forced to lmvae's lengths | {d['generate_sents_per_s']} "
        f"| {d['generate_tokens_per_s']} | | {ratio:.2f} |",
    ]
    return "\n".join(lines) + f"\n\nbf16 matmul: {record['matmul']['bf16_matmul_gflops']} GFLOP/s"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--decode-sentences", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latent-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decoder", default=None, help="decoder folder or .gguf (SmolLM2)")
    parser.add_argument("--heldout", type=int, default=300, help="sentences of decoder_nll")
    parser.add_argument(
        "--decoder-weights", default="float32", help="DecoderConfig.weights of every row"
    )
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--as-safetensors",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the GGUF decoder to DIR as safetensors once and use that (8bit / 4bit)",
    )
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for TAG.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.as_safetensors is not None and args.decoder is None:
        from lmvae.demo.real import real_backbones

        args.decoder = as_safetensors(real_backbones()[1], args.as_safetensors)
    if args.part:
        torch.manual_seed(0)
        result = globals()[f"part_{args.part}"](args)
        print(json.dumps(result))
        return result
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    record: dict = {
        "tag": args.tag,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    for name in args.parts.split(","):
        record[name] = _run_part(name, passthrough)
        print(name, record[name], file=sys.stderr)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.tag}.json").write_text(json.dumps(record, indent=1) + "\n")
    if set(PARTS) <= set(record):
        print(_table(record))
    return record


if __name__ == "__main__":
    main()
