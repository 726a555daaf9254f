"""One process of a sharded training run for tests/test_distributed.py; started by
lmvae.distributed.launch (or run alone for the single-process reference):

    python tests/distributed_helper.py ENCODER DECODER OUT BATCH_SIZE EPOCHS [OPTIONS]

Builds the tiny VAE with heads from a fixed seed, trains it in fp32 on support.CORPUS, and writes
what this process saw to OUT/seen-RANK.json: the training sentences it encoded, and the bytes
of parameters in DDP's gradient buckets against the model's trainable bytes.  OPTIONS, comma
separated: ``lora`` (LoRA rank 4 on the decoder), ``prompt`` (soft-prompt injection), ``odd``
(3 held-out sentences decoded), ``fsdp`` (the decoder sharded; what each process kept of it
is recorded too).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from support import CORPUS, reset_heads  # noqa: E402

import lmvae.training.setup as setup  # noqa: E402
from lmvae import LanguageVAE  # noqa: E402
from lmvae.data import split_corpus  # noqa: E402
from lmvae.train_config import TrainConfig  # noqa: E402
from lmvae.training import train  # noqa: E402


def build(encoder: str, decoder: str, options: frozenset[str] = frozenset()) -> LanguageVAE:
    """The tiny VAE of conftest's make_vae, its heads initialised from a fixed seed."""
    vae = LanguageVAE.from_backbones(
        encoder,
        decoder,
        8,
        decoder_injection="prompt" if "prompt" in options else "prefix",
        encoder_layer=0,
        decoder_max_length=12,
        decoder_lora_rank=4 if "lora" in options else 0,
    )
    reset_heads(vae)
    return vae


def run(
    encoder: str,
    decoder: str,
    out: Path,
    batch_size: int,
    epochs: int,
    options: frozenset[str] = frozenset(),
) -> dict:
    """Train and return what this process saw."""
    seen: dict = {"sentences": []}
    feature_source, data_parallel = setup.feature_source, setup.data_parallel

    def recording_source(model, texts, cond, store, disk=None):
        source = feature_source(model, texts, cond, store, disk)
        if "train" not in seen:  # the first source is the training set's
            seen["train"] = True

            def features(indices):
                seen["sentences"] += texts(indices)
                return source(indices)

            return features
        return source

    def recording_ddp(model, accelerator):
        wrapped = data_parallel(model, accelerator)
        if wrapped is not model:
            buckets = wrapped._get_ddp_logging_data()
            seen["synced_bytes"] = buckets["total_parameter_size_bytes"]
            seen["trainable_bytes"] = sum(
                p.numel() * p.element_size() for p in model.parameters() if p.requires_grad
            )
        return wrapped

    setup.feature_source, setup.data_parallel = recording_source, recording_ddp
    train_texts, eval_texts = split_corpus(CORPUS, 0.2, 1000, seed=0)
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=3e-3,
        free_bits=0.1,
        eval_decode_sentences=3 if "odd" in options else 4,
        mixed_precision="no",
        progress=False,
        fsdp="fsdp" in options,
    )
    vae = build(encoder, decoder, options)
    train(vae, train_texts, eval_texts, config, out)
    if "fsdp" in options:
        seen.update(kept_of_decoder(vae))
    return seen


def kept_of_decoder(vae: LanguageVAE) -> dict:
    """Elements of the decoder's frozen block weights this process holds, of how many."""
    from torch.distributed.tensor import DTensor

    from lmvae.fsdp import decoder_blocks

    blocks = decoder_blocks(vae.decoder.lm)
    frozen = [p for b in blocks for p in b.parameters() if not p.requires_grad]
    trainable = [p for p in vae.parameters() if p.requires_grad]
    return {
        "block_elements": sum(p.numel() for p in frozen),
        "kept_elements": sum(p.to_local().numel() for p in frozen if isinstance(p, DTensor)),
        "sharded_trainable": sum(isinstance(p, DTensor) for p in trainable),
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    enc, dec, folder, batch, n_epochs = sys.argv[1:6]
    chosen = frozenset(sys.argv[6].split(",")) if len(sys.argv) > 6 else frozenset()
    report = run(enc, dec, Path(folder), int(batch), int(n_epochs), chosen)
    rank = os.environ.get("RANK", "0")
    (Path(folder) / f"seen-{rank}.json").write_text(json.dumps(report))
