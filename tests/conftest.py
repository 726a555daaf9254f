"""Shared fixtures: tiny random-weight backbones of several architectures, built offline.

Every backbone is made from a config, saved with ``save_pretrained`` next to a tokenizer, and
loaded back by the tests through the real ``from_pretrained`` path (the same one users take).
Builds are lazy and cached per session: a test module only pays for the architectures it uses.
The builders and the corpus live in ``support.py`` so that test modules can import them.
"""

from __future__ import annotations

import os

# Before anything imports transformers / huggingface_hub: never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from support import CORPUS, BackboneFactory, reset_heads  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread():
    """The test machine's cores are shared: keep torch on one thread everywhere."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def backbones(tmp_path_factory) -> BackboneFactory:
    """Lazily built backbone folders: ``backbones.decoder("llama-gqa")``, ``.encoder("t5")``."""
    return BackboneFactory(tmp_path_factory.mktemp("backbones"))


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return list(CORPUS)


@pytest.fixture(scope="session")
def make_vae(backbones) -> Callable:
    """make_vae(encoder_id, decoder_id, latent_size=8, **opts) -> a fresh LanguageVAE whose
    trainable heads are initialised from a fixed seed."""
    from lmvae import LanguageVAE

    def make(encoder: str = "bert", decoder: str = "gpt2", latent_size: int = 8, **opts):
        # The tests of mechanics build on the layout of the tiny preset (prefix K/V slots, the
        # embedding layer pooled) unless they ask for another; the real-model defaults are
        # exercised by tests/test_real_models.py and the injection-mode tests.
        opts.setdefault("decoder_injection", "prefix")
        opts.setdefault("encoder_layer", 0)
        vae = LanguageVAE.from_backbones(
            str(backbones.encoder(encoder)), str(backbones.decoder(decoder)), latent_size, **opts
        )
        reset_heads(vae)
        return vae

    return make
