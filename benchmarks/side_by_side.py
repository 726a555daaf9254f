"""lmvae and the reference (langvae 0.6.13) side by side: same frozen models, data and set-up.

    # the reference's venv and models, once (see ../shared/peer/README.md)
    VENV=/tmp/peer bash ../shared/peer/setup.sh
    /tmp/peer/bin/python ../shared/peer/make_models.py --out /tmp/peer_models --threads 2
    # then
    .venv/bin/python benchmarks/side_by_side.py --threads 2 --epochs 6 --repeats 2
    .venv/bin/python benchmarks/side_by_side.py --quick      # smoke run: ~1-2 min; ~10 s with
                                                             # --no-reference

Trains each implementation on ../shared/peer/data/sentences.txt minus its last 200 lines
(latent 32, batch 32, sentences cut to 32 tokens, the same number of epochs) on the frozen
bert-tiny encoder and gpt2-tiny decoder, then reconstructs the 200 held-out sentences from the
posterior mean (encode + greedy decode, batch 32).  Each implementation keeps its own training
recipe: langvae the one of its README (as in ../shared/peer/bench_langvae.py: AdamW 1e-3,
cyclical beta with a KL threshold), lmvae its preset "tiny" (its defaults are measured on real
pretrained backbones; tiny ones trained on the corpus want the preset).  This is repeated with
the decoder's vocabulary widened to GPT-2's 50,257 (embedding matrix resized, as
../shared/peer/vocab_scaling.py does; the reference's one-hot targets widened to match).

Every run is a subprocess of its own, so peak RSS (ru_maxrss) is clean, and the runs are
interleaved (reference, lmvae, reference, lmvae, ...) so both see the same machine load.
Training sentences/s count training passes only (each side's per-epoch evaluation excluded;
the reference's epoch ends at its first evaluation step), averaged over epochs 2 and on (both
sides cache encoder features after epoch 1).  Decoding is timed over encode + decode of the
held-out set (lmvae decodes with a bf16 decoder when it trained with one).  BLEU-4 (sacrebleu
corpus BLEU, 0-1) and exact match are computed here, identically, from both sides' outputs.
The reference side only imports and calls langvae, in its own venv (``--peer-python``);
without it the reference columns read n/a.

Prints one markdown table; the last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER = HERE.parent.parent / "shared" / "peer"
GPT2_VOCAB = 50257
LATENT, BATCH, MAX_LEN, EVAL_SIZE = 32, 32, 32, 200


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _split(args) -> tuple[list[str], list[str]]:
    lines = [s.strip() for s in Path(args.data).read_text().splitlines() if s.strip()]
    train, held_out = lines[:-EVAL_SIZE], lines[-EVAL_SIZE:]
    if args.quick:
        train, held_out = train[: args.quick_train], held_out[: args.quick_eval]
    return train, held_out


# -- the reference: runs in its own venv and only imports and calls langvae ----------------------
def run_reference(args) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from langvae import LangVAE
    from langvae.data_conversion.tokenization import TokenizedDataSet, collate_sparse_fn
    from langvae.decoders import SentenceDecoder
    from langvae.encoders import SentenceEncoder
    from langvae.pipelines import LanguageTrainingPipeline
    from langvae.trainers import CyclicalScheduleKLThresholdTrainerConfig
    from pythae.models.vae import VAEConfig
    from pythae.trainers.training_callbacks import TrainingCallback
    from torch.utils.data import DataLoader

    train_s, eval_s = _split(args)
    decoder = SentenceDecoder(f"{args.models}/gpt2-tiny", LATENT, MAX_LEN, device="cpu")
    if args.vocab:
        decoder.decoder.resize_token_embeddings(args.vocab)
    encoder = SentenceEncoder(
        f"{args.models}/bert-tiny", LATENT, decoder.tokenizer, caching=True, device="cpu"
    )
    model = LangVAE(VAEConfig(latent_dim=LATENT), encoder, decoder)
    train_ds = TokenizedDataSet(train_s, decoder.tokenizer, decoder.max_len, caching=True)
    eval_ds = TokenizedDataSet(eval_s, decoder.tokenizer, decoder.max_len, caching=True)
    if args.vocab:  # one-hot width = the widened vocabulary
        train_ds.vocab_size = eval_ds.vocab_size = args.vocab

    class Timer(TrainingCallback):
        """Training seconds per epoch: from its start to its first evaluation step."""

        def __init__(self):
            self.seconds, self.start = [], None

        def on_epoch_begin(self, training_config, **kw):
            self.start = time.perf_counter()

        def on_eval_step_begin(self, training_config, **kw):
            if self.start is not None:
                self.seconds.append(time.perf_counter() - self.start)
                self.start = None

    tcfg = CyclicalScheduleKLThresholdTrainerConfig(
        output_dir=tempfile.mkdtemp(prefix="langvae-"),
        num_epochs=args.epochs,
        learning_rate=1e-3,
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=BATCH,
        steps_saving=None,
        optimizer_cls="AdamW",
        scheduler_cls="ReduceLROnPlateau",
        scheduler_params={"patience": 5, "factor": 0.5},
        max_beta=1.0,
        n_cycles=max(1, int(args.epochs * 0.8)),
        target_kl=2.0,
        keep_best_on_train=True,
        no_cuda=True,
        seed=args.seed,
    )
    timer = Timer()
    pipeline = LanguageTrainingPipeline(training_config=tcfg, model=model)
    start = time.perf_counter()
    pipeline(train_data=train_ds, eval_data=eval_ds, callbacks=[timer])
    train_wall = time.perf_counter() - start
    best = pipeline.trainer._best_model  # what the pipeline keeps and saves (best on train)
    best.eval()
    best.encoder.caching = False  # measure the real encoding cost
    best.encoder.cache = {}
    start = time.perf_counter()
    hyps = []
    with torch.no_grad():
        for batch in DataLoader(eval_ds, batch_size=BATCH, collate_fn=collate_sparse_fn):
            mean = best.encoder(batch["data"]).embedding  # posterior mean, as for lmvae
            hyps.extend(s.strip() for s in best.decode_sentences(mean))
    decode_seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "train_epoch_seconds": timer.seconds,
        "n_train": len(train_s),
        "train_wall_seconds": train_wall,
        "decode_seconds": decode_seconds,
        "hypotheses": hyps,
        "trainable_params": params,
        "peak_rss_mb": _peak_rss_mb(),
        "precision": "fp32",
    }


# -- lmvae ---------------------------------------------------------------------------------------
def _widened_decoder(folder: str, vocab: int, out: Path) -> str:
    """A copy of the decoder with its embedding matrix resized to ``vocab`` rows."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_pretrained(folder)
    lm.resize_token_embeddings(vocab)
    lm.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return str(out)


def _tiny_backbones(texts: list[str], out: Path) -> tuple[str, str]:
    """Untrained 2-layer BERT / GPT-2 built from configs: the smoke run's stand-ins when the
    reference's models are not there (timings only; the quality figures mean nothing)."""
    import torch
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    from lmvae.demo.backbones import build_decoder_tokenizer, build_encoder_tokenizer

    torch.manual_seed(0)
    enc_tok, dec_tok = build_encoder_tokenizer(texts), build_decoder_tokenizer(texts)
    size = {"num_hidden_layers": 2, "num_attention_heads": 4}
    enc = BertModel(
        BertConfig(
            vocab_size=len(enc_tok),
            hidden_size=64,
            intermediate_size=256,
            max_position_embeddings=64,
            **size,
        ),
        add_pooling_layer=False,
    )
    dec = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(dec_tok),
            n_embd=64,
            n_positions=64,
            n_layer=2,
            n_head=4,
            bos_token_id=dec_tok.bos_token_id,
            eos_token_id=dec_tok.eos_token_id,
        )
    )
    for model, tok, name in ((enc, enc_tok, "encoder"), (dec, dec_tok, "decoder")):
        model.save_pretrained(out / name)
        tok.save_pretrained(out / name)
    return str(out / "encoder"), str(out / "decoder")


def run_lmvae(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from lmvae import LanguageVAE, TrainConfig, train
    from lmvae.precision import default_mixed_precision

    train_s, eval_s = _split(args)
    tmp = Path(tempfile.mkdtemp(prefix="lmvae-bench-"))
    if Path(args.models, "gpt2-tiny").is_dir():
        encoder, decoder = f"{args.models}/bert-tiny", f"{args.models}/gpt2-tiny"
    else:
        encoder, decoder = _tiny_backbones(train_s + eval_s, tmp)
    if args.vocab:
        decoder = _widened_decoder(decoder, args.vocab, tmp / "widened")
    precision = args.precision
    if precision == "auto":  # lmvae's default
        precision = default_mixed_precision(torch.device("cpu"))
    model = LanguageVAE.from_backbones(
        encoder,
        decoder,
        LATENT,
        encoder_max_length=MAX_LEN,
        decoder_max_length=MAX_LEN,
        preset="tiny",  # tiny models pretrained on the corpus (lmvae.presets)
    )
    config = TrainConfig.from_preset(
        "tiny",
        epochs=args.epochs,
        batch_size=BATCH,
        seed=args.seed,
        progress=False,
        mixed_precision=precision,
        eval_decode_sentences=0,  # held-out loss per epoch, as the reference's pipeline
    )
    start = time.perf_counter()
    result = train(model, train_s, eval_s, config)
    train_wall = time.perf_counter() - start
    start = time.perf_counter()
    # A model trained with a bf16 decoder decodes with it too.
    hyps = model.reconstruct(eval_s, batch_size=BATCH, bf16=precision == "bf16")
    decode_seconds = time.perf_counter() - start
    return {
        "train_epoch_seconds": [r["train_seconds"] for r in result.history],
        "n_train": len(train_s),
        "train_wall_seconds": train_wall,
        "decode_seconds": decode_seconds,
        "hypotheses": hyps,
        "trainable_params": model.num_parameters(trainable_only=True),
        "peak_rss_mb": _peak_rss_mb(),
        "precision": precision,
    }


# -- the parent: interleaved subprocesses, one table -----------------------------------------------
def _child(args, side: str, vocab: int) -> dict:
    python = args.peer_python if side == "langvae" else sys.executable
    cmd = [python, str(Path(__file__).resolve()), "--child", side, "--vocab", str(vocab)]
    for flag in ("models", "data", "threads", "epochs", "seed", "precision"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    if args.quick:
        cmd += ["--quick"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    if side == "lmvae":
        src = str(HERE.parent / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{side} (vocab {vocab or 'own'}) failed: " + " | ".join(tail))
    out = json.loads(lines[-1])
    out["wall_seconds"] = wall
    return out


def _figures(raw: dict, held_out: list[str]) -> dict:
    from lmvae.metrics import reconstruction_metrics

    epochs = raw["train_epoch_seconds"]
    later = epochs[1:] or epochs
    quality = reconstruction_metrics(raw["hypotheses"], held_out)
    return {
        "train_sents_per_s": raw["n_train"] / statistics.mean(later),
        "train_sents_per_s_epoch1": raw["n_train"] / epochs[0],
        "decode_sents_per_s": len(held_out) / raw["decode_seconds"],
        "peak_rss_mb": raw["peak_rss_mb"],
        "trainable_params": raw["trainable_params"],
        "bleu4": quality["bleu"],
        "exact_match": quality["exact_match"],
        "wall_seconds": raw["wall_seconds"],
        "precision": raw["precision"],
    }


# key, label, format, and how repeated runs combine: the host is shared, and load from other
# jobs only ever slows a run down, so speeds take the best run; quality is deterministic.
ROWS = [
    ("train_sents_per_s", "training sentences/s (epochs 2+)", "{:.0f}", max),
    ("train_sents_per_s_epoch1", "training sentences/s (epoch 1)", "{:.0f}", max),
    ("decode_sents_per_s", "decoding sentences/s (encode + greedy, batch 32)", "{:.0f}", max),
    ("peak_rss_mb", "peak RSS (MB)", "{:.0f}", statistics.median),
    ("trainable_params", "trainable parameters", "{:,}", min),
    ("bleu4", "held-out BLEU-4 (posterior mean)", "{:.3f}", min),
    ("exact_match", "held-out exact match", "{:.3f}", min),
    ("wall_seconds", "wall time of the whole run (s)", "{:.1f}", min),
]


def _key(side: str, vocab: int) -> str:
    return f"{side}/{vocab or 'own'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved runs of each side")
    ap.add_argument("--vocabs", default=f"0,{GPT2_VOCAB}", help="0 = the decoder's own")
    ap.add_argument("--quick", action="store_true", help="smoke run: few steps, small eval")
    ap.add_argument("--quick-train", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--quick-eval", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--models", default="/tmp/peer_models")
    ap.add_argument("--data", default=str(PEER / "data" / "sentences.txt"))
    ap.add_argument("--peer-python", default="/tmp/peer/bin/python")
    ap.add_argument("--no-reference", action="store_true", help="run lmvae only")
    ap.add_argument(
        "--precision", default="auto", help="lmvae: auto (bf16 where the CPU has it), bf16, no"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", choices=["langvae", "lmvae"], help=argparse.SUPPRESS)
    ap.add_argument("--vocab", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run = run_reference if args.child == "langvae" else run_lmvae
        print(json.dumps(run(args)))
        return
    if args.quick:
        args.epochs = min(args.epochs, 2)

    notes = []
    if not Path(args.data).is_file():
        from lmvae.demo.corpus import load_demo_corpus

        args.data = str(Path(tempfile.mkdtemp(prefix="lmvae-bench-")) / "sentences.txt")
        Path(args.data).write_text("\n".join(r.text for r in load_demo_corpus()) + "\n")
        notes.append("the reference's corpus is absent: lmvae's demo corpus stands in")
    have_models = all(Path(args.models, m).is_dir() for m in ("bert-tiny", "gpt2-tiny"))
    reference = Path(args.peer_python).is_file() and have_models and not args.no_reference
    if args.no_reference:
        notes.append("reference skipped: --no-reference")
    elif not reference:
        missing = args.peer_python if not Path(args.peer_python).is_file() else args.models
        notes.append(f"reference skipped: {missing} not found (see ../shared/peer/README.md)")
    if not have_models:
        notes.append("the reference's models are absent: lmvae runs on untrained 2-layer stand-ins")
    _, held_out = _split(args)

    vocabs = [int(v) for v in args.vocabs.split(",")]
    sides = (["langvae"] if reference else []) + ["lmvae"]
    runs: dict[tuple[str, int], list[dict]] = {(s, v): [] for s in sides for v in vocabs}
    for _ in range(args.repeats):
        for vocab in vocabs:
            for side in sides:
                try:
                    runs[side, vocab].append(_figures(_child(args, side, vocab), held_out))
                except RuntimeError as err:
                    if side == "lmvae":
                        raise
                    notes.append(f"reference run failed, left out: {err}")
                print(f"  done: {side} vocab {vocab or 'own'}", file=sys.stderr, flush=True)
    runs = {key: r for key, r in runs.items() if r}

    figures = {
        _key(s, v): {
            **{key: combine([x[key] for x in r]) for key, _, _, combine in ROWS},
            "precision": r[0]["precision"],
        }
        for (s, v), r in runs.items()
    }
    header = "| figure |"
    rule = "|---|"
    for vocab in vocabs:
        name = "own vocabulary" if not vocab else f"vocabulary {vocab:,}"
        header += f" langvae 0.6.13, {name} | lmvae, {name} | lmvae / langvae |"
        rule += "---|---|---|"
    lines = [header, rule]
    ratios = {}
    for key, label, fmt, _ in ROWS:
        row = f"| {label} |"
        for vocab in vocabs:
            ours = figures[_key("lmvae", vocab)][key]
            theirs = figures.get(_key("langvae", vocab), {}).get(key)
            ratio = ours / theirs if theirs else None
            ratios[f"{key}/{vocab or 'own'}"] = ratio
            row += f" {fmt.format(theirs) if theirs is not None else 'n/a'} | {fmt.format(ours)} |"
            row += f" {f'{ratio:.2f}x' if ratio is not None else 'n/a'} |"
        lines.append(row)
    print(
        f"\nthreads {args.threads}, epochs {args.epochs}, latent {LATENT}, batch {BATCH}, "
        f"{args.repeats} interleaved run(s) per side (speeds and wall time: the best run; RSS: "
        "the median); lmvae precision "
        f"{figures[_key('lmvae', vocabs[0])]['precision']}"
        + (" -- QUICK SMOKE RUN: timings and quality are not comparable" if args.quick else "")
    )
    for note in notes:
        print(f"note: {note}")
    print("\n".join(lines))
    print(
        json.dumps(
            {
                "bench": "side_by_side",
                "threads": args.threads,
                "epochs": args.epochs,
                "repeats": args.repeats,
                "quick": args.quick,
                "reference": reference,
                "notes": notes,
                "figures": figures,
                "ratios": ratios,
                "runs": {_key(s, v): r for (s, v), r in runs.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
