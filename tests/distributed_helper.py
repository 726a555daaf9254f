"""One process of a sharded training run for tests/test_distributed.py; started by
lmvae.distributed.launch (or run alone for the single-process reference):

    python tests/distributed_helper.py ENCODER DECODER OUT BATCH_SIZE EPOCHS

Builds the tiny VAE with heads from a fixed seed, trains it in fp32 on support.CORPUS, and writes
what this process saw to OUT/seen-RANK.json: the training sentences it encoded, and the bytes
of parameters in DDP's gradient buckets against the model's trainable bytes.
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


def build(encoder: str, decoder: str) -> LanguageVAE:
    """The tiny VAE of conftest's make_vae, its heads initialised from a fixed seed."""
    vae = LanguageVAE.from_backbones(
        encoder, decoder, 8, decoder_injection="prefix", encoder_layer=0, decoder_max_length=12
    )
    reset_heads(vae)
    return vae


def run(encoder: str, decoder: str, out: Path, batch_size: int, epochs: int) -> dict:
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
        eval_decode_sentences=4,
        mixed_precision="no",
        progress=False,
    )
    vae = build(encoder, decoder)
    train(vae, train_texts, eval_texts, config, out)
    return seen


if __name__ == "__main__":
    torch.set_num_threads(1)
    enc, dec, folder, batch, n_epochs = sys.argv[1:6]
    report = run(enc, dec, Path(folder), int(batch), int(n_epochs))
    rank = os.environ.get("RANK", "0")
    (Path(folder) / f"seen-{rank}.json").write_text(json.dumps(report))
