"""How evenly an encoder's pooled layers spread across sentences (docs/benchmarks.md, session 15).

    .venv/bin/python benchmarks/pooled_spread.py                  # the installed all-MiniLM-L6-v2
    .venv/bin/python benchmarks/pooled_spread.py --encoder /tmp/smollm2_st

Mean-pools every hidden state of the encoder (lmvae's layer mix) over the first N WordNet
training sentences and prints, per layer, the largest spread of one number across sentences
over the layer's median spread, and the share of the layer's variance in its top four numbers.
Decoder LMs' outsized residual numbers show as ratios in the hundreds.
"""

from __future__ import annotations

import argparse
import json

import torch

from lmvae.backbones import load_encoder
from lmvae.config import BackboneRef, EncoderConfig
from lmvae.data import tokenize_encoder
from lmvae.demo.real import real_backbones
from lmvae.encoder import SentenceEncoder
from lmvae.wordnet import DEFAULT_ROOT, build_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default=None, help="encoder folder (default: MiniLM)")
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = build_corpus(DEFAULT_ROOT, seed=0).train[: args.sentences]
    model, tokenizer = load_encoder(BackboneRef(args.encoder or real_backbones()[0]))
    if tokenizer.pad_token is None:  # decoder LMs
        tokenizer.pad_token = tokenizer.eos_token
    encoder = SentenceEncoder(model, EncoderConfig(layer="mix"), latent_size=1)
    with torch.no_grad():
        batches = [
            tokenize_encoder(tokenizer, texts[i : i + 32], max_length=64)
            for i in range(0, len(texts), 32)
        ]
        feats = torch.cat([encoder.features(b["input_ids"], b["attention_mask"]) for b in batches])
    rows = []
    for layer in range(feats.shape[1]):
        spread = feats[:, layer].std(0)
        top = spread.topk(4)
        rows.append(
            {
                "layer": layer,
                "max_over_median_spread": round(float(spread.max() / spread.median()), 1),
                "top4_variance_share": round(
                    float(top.values.square().sum() / spread.square().sum()), 3
                ),
                "top4_numbers": top.indices.tolist(),
            }
        )
        print(json.dumps(rows[-1]))


if __name__ == "__main__":
    main()
