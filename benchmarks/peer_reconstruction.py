"""Held-out reconstruction on the reference's corpus with the reference's own frozen tiny models.

    # once: the reference harness builds bert-tiny / gpt2-tiny (needs its transformers 4.48 venv)
    VENV=/tmp/peer bash ../shared/peer/setup.sh
    /tmp/peer/bin/python ../shared/peer/make_models.py --out /tmp/peer_models --threads 2
    # then
    .venv/bin/python benchmarks/peer_reconstruction.py --models /tmp/peer_models --threads 2

Trains lmvae on ../shared/peer/data/sentences.txt minus its last 200 lines, then reconstructs
those 200 held-out sentences from the posterior mean (greedy) and prints BLEU-4, exact match,
KL and wall time next to the figures recorded for langvae 0.6.13 in
../shared/peer/results/bench_bert_run1.json (same models, data, latent size 32, batch 32).
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from lmvae import DecoderConfig, LanguageVAE, TrainConfig, evaluate, train
from lmvae.metrics import reconstruction_metrics

HERE = Path(__file__).resolve().parent
PEER = HERE.parent.parent / "shared" / "peer"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="/tmp/peer_models")
    ap.add_argument("--data", default=str(PEER / "data" / "sentences.txt"))
    ap.add_argument("--reference", default=str(PEER / "results" / "bench_bert_run1.json"))
    ap.add_argument("--eval-size", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-2, help="the tiny preset's")
    ap.add_argument("--free-bits", type=float, default=TrainConfig.free_bits)
    ap.add_argument("--beta-max", type=float, default=TrainConfig.beta_max)
    ap.add_argument("--encoder-layer", default="0")
    ap.add_argument("--num-slots", type=int, default=DecoderConfig.num_slots)
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--mixed-precision", default=None, help="no | bf16 (default: lmvae's choice for the CPU)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    lines = [s.strip() for s in Path(args.data).read_text().splitlines() if s.strip()]
    train_texts, eval_texts = lines[: -args.eval_size], lines[-args.eval_size :]
    layer = args.encoder_layer if args.encoder_layer == "mix" else int(args.encoder_layer)
    torch.manual_seed(args.seed)
    model = LanguageVAE.from_backbones(
        f"{args.models}/bert-tiny",
        f"{args.models}/gpt2-tiny",
        args.latent,
        encoder_layer=layer,
        decoder_num_slots=args.num_slots,
        decoder_rank=args.rank,
        encoder_max_length=32,
        decoder_max_length=32,
        preset="tiny",  # the reference's tiny models are pretrained on this corpus
    )
    config = TrainConfig.from_preset(
        "tiny",
        epochs=args.epochs,
        batch_size=args.batch,
        lr=args.lr,
        free_bits=args.free_bits,
        beta_max=args.beta_max,
        seed=args.seed,
        progress=False,
        mixed_precision=args.mixed_precision,
    )
    result = train(model, train_texts, eval_texts, config, log=print)
    train_seconds = sum(r["train_seconds"] for r in result.history)

    start = time.perf_counter()
    hyps = model.reconstruct(eval_texts, batch_size=32)
    recon_seconds = time.perf_counter() - start
    quality = reconstruction_metrics(hyps, eval_texts)
    final = evaluate(model, eval_texts, decode_sentences=0)
    ours = {
        "bleu4": round(quality["bleu"], 4),
        "exact_match": round(quality["exact_match"], 4),
        "word_accuracy": round(quality["word_accuracy"], 4),
        "eval_kl": round(final["kl"], 2),
        "eval_recon_nll": round(final["recon_nll"], 2),
        "active_units": final["active_units"],
        "train_seconds_excl_eval": round(train_seconds, 1),
        "train_wall_seconds": round(result.seconds, 1),
        "recon_sents_per_s": round(len(eval_texts) / recon_seconds, 1),
        "trainable_params": model.num_parameters(trainable_only=True),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "epochs": args.epochs,
    }
    ref = json.loads(Path(args.reference).read_text()) if Path(args.reference).is_file() else {}
    ref_q = ref.get("recon_quality_mean_z", {})
    rows = [
        ("held-out BLEU-4 (mean z)", ours["bleu4"], ref_q.get("bleu4")),
        ("held-out exact match", ours["exact_match"], ref_q.get("exact_match")),
        ("held-out word accuracy", ours["word_accuracy"], ref_q.get("word_accuracy")),
        ("eval KL (nats / sentence)", ours["eval_kl"], (ref.get("eval_kl_curve") or [None])[-1]),
        ("training wall time (s)", ours["train_wall_seconds"], ref.get("pipeline_total_seconds")),
        ("trainable parameters", ours["trainable_params"], ref.get("params", {}).get("trainable")),
        ("peak RSS (MB)", ours["peak_rss_mb"], ref.get("rss_peak_final_mb")),
    ]
    print(f"\n| figure | lmvae | langvae 0.6.13 (recorded, {ref.get('num_epochs', '?')} epochs) |")
    print("|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a} | {b if b is not None else 'n/a'} |")
    for src, hyp in list(zip(eval_texts, hyps, strict=True))[:5]:
        print(f"  {src!r} -> {hyp!r}")
    print(json.dumps({"lmvae": ours, "reference": {name: b for name, _, b in rows}}))


if __name__ == "__main__":
    main()
