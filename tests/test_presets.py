"""lmvae.presets: named settings are applied under explicit ones, recorded, and checked."""

from __future__ import annotations

import pytest

from lmvae.config import VAEConfig
from lmvae.errors import ConfigError
from lmvae.presets import PRESETS
from lmvae.train_config import TrainConfig


def test_a_preset_sets_what_it_names_and_is_recorded():
    tiny = VAEConfig.create("enc", "dec", 8, preset="tiny")
    assert tiny.decoder.injection == "prefix" and tiny.encoder.layer == 0
    assert tiny.preset == "tiny"
    assert VAEConfig.from_dict(tiny.to_dict()).preset == "tiny"  # round-trips through JSON
    default = VAEConfig.create("enc", "dec", 8)
    assert default.preset is None and default.decoder.injection == "prompt"
    assert default.encoder.layer == "mix"
    # The tiny preset keeps the start and batch its measurements were made with.
    assert tiny.encoder.init_logvar == 0.0 and default.encoder.init_logvar == -4.0
    assert TrainConfig.from_preset("tiny").batch_size == 32 != TrainConfig().batch_size


def test_explicit_settings_win_over_the_preset():
    cfg = VAEConfig.create("enc", "dec", 8, preset="tiny", decoder_injection="per_position")
    assert cfg.decoder.injection == "per_position" and cfg.encoder.layer == 0
    train = TrainConfig.from_preset("tiny", lr=3e-3, epochs=2)
    assert train.lr == 3e-3 and train.epochs == 2
    assert TrainConfig.from_preset("tiny").lr == PRESETS["tiny"].train["lr"] != TrainConfig().lr
    assert TrainConfig.from_preset(None) == TrainConfig()


def test_unknown_presets_are_named():
    with pytest.raises(ConfigError, match="unknown preset 'huge': known presets are tiny"):
        VAEConfig.create("enc", "dec", 8, preset="huge")
    with pytest.raises(ConfigError, match="unknown preset"):
        TrainConfig.from_preset("huge")
