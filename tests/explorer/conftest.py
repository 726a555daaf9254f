"""An explorer over a tiny random-weight model and 80 sentences of the demo corpus (with their
role labels and template families), shared by the API, lane and browser tests."""

from __future__ import annotations

import pytest

from lmvae.explorer import Explorer, create_app
from lmvae.probes.records import load_probe_data


@pytest.fixture(scope="session")
def corpus_data():
    return load_probe_data("demo").subset(range(80))


@pytest.fixture(scope="session")
def explorer(make_vae, corpus_data) -> Explorer:
    vae = make_vae("bert", "gpt2", latent_size=6)
    return Explorer(vae, corpus_data, name="tiny", max_new_tokens=6)


@pytest.fixture
def app(explorer):
    return create_app(explorer)
