"""``lmvae train --fsdp`` on GPUs: the checks the 2-core CI machine (no GPU) cannot make
(issue 17, part 2).

    # on a machine with GPUs (see /work/.library/device), ~5 minutes on one H100
    python benchmarks/fsdp_gpu_check.py
    # anywhere: 2 CPU processes over gloo, tiny models only (the script itself works)
    python benchmarks/fsdp_gpu_check.py --smoke

Processes: one per GPU, up to ``--processes`` (default 2).  With a single GPU one launched
process runs FSDP over a mesh of one: every step FSDP adds (DTensor weights, gathers, the
block inputs cast to bf16, the decoder held in bf16) runs on the GPU, but nothing is split.

1. equivalence: tiny random backbones (BERT -> Llama, LoRA on the decoder, soft prompt), the
   FSDP run's trainable weights against one plain process with the same global batch, in fp32
   (fails past rtol 1e-3 / atol 1e-4: GPU sums in another order than the CPU test's 1e-4 /
   1e-5) and in bf16 (reported only: the FSDP run holds the frozen decoder in bf16 where the
   plain run autocasts fp32 weights).
2. memory: a random decoder of Llama-3.2-1B size (``--size``) in bf16, FSDP against DDP (or
   against a plain process, with one GPU): peak GPU memory per process and sentences/s.

Prints a markdown table and one JSON line; exits 1 when an equivalence check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SIZES = {
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2},
    "llama-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16},
}
HEADS = {"tiny": (4, 2, 16), "llama-1b": (32, 8, 64)}  # attention heads, K/V heads, head dim


def _texts(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(300)]
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 12))) for _ in range(n)]


def build(folder: Path, size: str) -> tuple[str, str]:
    """A tiny BERT encoder and a Llama decoder of ``size``, random, saved as folders."""
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    from lmvae.demo.backbones import build_decoder_tokenizer, build_encoder_tokenizer

    texts = _texts(500)
    enc_tok, dec_tok = build_encoder_tokenizer(texts), build_decoder_tokenizer(texts)
    torch.manual_seed(0)
    enc = BertModel(
        BertConfig(
            vocab_size=len(enc_tok),
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
        ),
        add_pooling_layer=False,
    )
    heads, kv_heads, head_dim = HEADS[size]
    dec = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(dec_tok),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            max_position_embeddings=256,
            bos_token_id=dec_tok.bos_token_id,
            eos_token_id=dec_tok.eos_token_id,
            **SIZES[size],
        )
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bars between the results
    paths = []
    for name, model, tok in (("enc", enc, enc_tok), (f"dec-{size}", dec, dec_tok)):
        model.save_pretrained(folder / name)
        tok.save_pretrained(folder / name)
        paths.append(str(folder / name))
    return paths[0], paths[1]


def child(args: argparse.Namespace) -> None:
    """One process of a run: train, then write what it measured to OUT/report-RANK.json."""
    from lmvae import LanguageVAE, TrainConfig, train

    torch.manual_seed(0)
    vae = LanguageVAE.from_backbones(
        args.encoder,
        args.decoder,
        16,
        encoder_layer=0,
        decoder_max_length=16,
        decoder_lora_rank=4 if args.lora else 0,
    )
    texts = _texts(args.sentences + 16, seed=1)
    config = TrainConfig(
        epochs=2,
        batch_size=args.batch,
        lr=3e-3,
        free_bits=0.1,
        eval_decode_sentences=5,
        mixed_precision=args.mixed,
        progress=False,
        fsdp=args.fsdp,
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = train(vae, texts[16:], texts[:16], config, args.out)
    report = {
        "seconds": time.perf_counter() - start,
        "sentences_per_s": result.history[-1]["train_sents_per_s"],
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0,
        "notes": result.notes,
    }
    rank = os.environ.get("RANK", "0")
    (Path(args.out) / f"report-{rank}.json").write_text(json.dumps(report))


def _run(out: Path, processes: int, **options) -> dict:
    """Train in ``processes`` launched processes (0: one plain process, no launcher)."""
    from lmvae.distributed import launch

    command = [sys.executable, __file__, "--child", "--out", str(out)]
    for key, value in options.items():
        if value is True:
            command.append(f"--{key}")
        elif value is not False:
            command += [f"--{key}", str(value)]
    code = launch(command, processes) if processes else subprocess.run(command).returncode
    if code:
        raise SystemExit(f"the run in {out} failed (exit code {code})")
    return json.loads((out / "report-0.json").read_text())


def _differ(a: Path, b: Path) -> tuple[float, float, bool]:
    """Largest absolute and relative differences between two runs' trainable weights, and
    whether every weight is within rtol 1e-3 / atol 1e-4."""
    from safetensors.torch import load_file

    wa, wb = (load_file(d / "last" / "model.safetensors") for d in (a, b))
    absolute = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    relative = max(((wa[k] - wb[k]).abs() / (wa[k].abs() + 1e-4)).max().item() for k in wa)
    close = all(torch.allclose(wb[k], wa[k], rtol=1e-3, atol=1e-4) for k in wa)
    return absolute, relative, close


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--size", default="llama-1b", choices=sorted(SIZES))
    ap.add_argument("--smoke", action="store_true", help="CPU, 2 gloo processes, tiny only")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("out", "encoder", "decoder", "mixed"):
        ap.add_argument(f"--{name}", help=argparse.SUPPRESS)
    for name in ("fsdp", "lora"):
        ap.add_argument(f"--{name}", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
    ap.add_argument("--sentences", type=int, default=64, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    gpus = torch.cuda.device_count()
    if not gpus and not args.smoke:
        raise SystemExit("no GPU here: run with --smoke for the CPU check of the script")
    n = 2 if args.smoke else min(args.processes, gpus)
    rows, failed = [], False
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        enc, tiny = build(root, "tiny")
        for mixed in ("no", "bf16"):
            common = {"encoder": enc, "decoder": tiny, "mixed": mixed, "lora": True}
            # The same global batch: 8 rows in one process, 8 / n in each of n.
            plain = _run(root / f"plain-{mixed}", 0, batch=8, **common)
            sharded = _run(root / f"fsdp-{mixed}", n, batch=8 // n, fsdp=True, **common)
            absolute, relative, close = _differ(root / f"plain-{mixed}", root / f"fsdp-{mixed}")
            ok = close if mixed == "no" else absolute == absolute  # bf16: reported (not NaN)
            failed |= not ok
            rows.append(
                {
                    "check": f"equivalence {mixed}",
                    "processes": n,
                    "max_abs_diff": absolute,
                    "max_rel_diff": relative,
                    "ok": ok,
                    "sharding": sharded["notes"][0],
                    "plain_sentences_per_s": plain["sentences_per_s"],
                }
            )
        if not args.smoke:
            _, big = build(root, args.size)
            common = {"encoder": enc, "decoder": big, "mixed": "bf16", "sentences": 256}
            for label, options in (("ddp", {}), ("fsdp", {"fsdp": True})):
                report = _run(root / label, n, batch=32 // n, **common, **options)
                rows.append({"check": f"memory {args.size} {label}", "processes": n, **report})
    device = torch.cuda.get_device_name(0) if gpus else "cpu"
    print(f"\n{device}, {n} process(es)" + (" -- SMOKE RUN" if args.smoke else ""))
    print("| check | processes | max abs diff | max rel diff | peak GiB | sentences/s | ok |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["check"], r["processes"]]
        cells += [f"{r[k]:.3g}" if k in r else "" for k in ("max_abs_diff", "max_rel_diff")]
        cells += [f"{r[k]:.2f}" if k in r else "" for k in ("peak_gib", "sentences_per_s")]
        cells.append(r.get("ok", ""))
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print(json.dumps({"bench": "fsdp_gpu_check", "device": device, "rows": rows}))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
