"""lmvae.config: option routing, validation messages and JSON round trips."""

from __future__ import annotations

import json

import pytest

from lmvae.config import (
    BackboneRef,
    VAEConfig,
    replace,
)
from lmvae.errors import ConfigError
from lmvae.train_config import TrainConfig


def test_create_routes_prefixed_options_to_their_sections():
    cfg = VAEConfig.create(
        "enc",
        "dec",
        16,
        encoder_pooling="cls",
        encoder_layer="mix",
        decoder_num_slots=2,
        decoder_rank=4,
        revision="v1",
        decoder_revision="v2",
        trust_remote_code=True,
    )
    assert cfg.latent_size == 16
    assert cfg.encoder.pooling == "cls" and cfg.encoder.layer == "mix"
    assert cfg.decoder.num_slots == 2 and cfg.decoder.rank == 4
    assert cfg.encoder.backbone == BackboneRef("enc", "v1", True)
    assert cfg.decoder.backbone == BackboneRef("dec", "v2", True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latent_size": 0}, "latent_size must be >= 1"),
        ({"encoder_pooling": "max"}, "pooling must be mean, cls or last"),
        ({"encoder_layer": "top"}, "encoder layer must be an integer or 'mix'"),
        ({"decoder_num_slots": 0}, "num_slots must be >= 1"),
        ({"decoder_rank": -1}, "rank and hidden must be >= 0"),
        ({"decoder_hidden": -1}, "rank and hidden must be >= 0"),
        ({"decoder_max_length": 1}, "decoder max_length must be >= 2"),
        ({"encoder_label_scale": 0}, "label_scale must be a number > 0"),
        ({"encoder_label_scale": "big"}, "label_scale must be a number > 0"),
        ({"encoder_label_scale": True}, "label_scale must be a number > 0"),
        ({"encoder_colour": "red"}, "unknown EncoderConfig option"),
        ({"bogus": 1}, "unknown VAEConfig option"),
    ],
)
def test_create_rejects_bad_settings_by_name(kwargs, message):
    kwargs = {"latent_size": 8, **kwargs}
    with pytest.raises(ConfigError, match=message):
        VAEConfig.create("enc", "dec", **kwargs)


def test_json_round_trip(tmp_path):
    cfg = VAEConfig.create("enc", "dec", 12, encoder_layer=1, decoder_embed_injection=True)
    path = tmp_path / "config.json"
    cfg.to_json(path)
    assert json.loads(path.read_text())["latent_size"] == 12
    assert VAEConfig.from_json(path) == cfg


def test_format_2_configs_keep_their_unscaled_label_blocks():
    data = VAEConfig.create("e", "d", 4).to_dict()
    assert data["encoder"]["label_scale"] is None  # new models: 1 / the number of groups
    data["format_version"] = 2
    del data["encoder"]["label_scale"]
    assert VAEConfig.from_dict(data).encoder.label_scale == 1.0  # what they trained with


def test_format_3_configs_load_their_decoder_in_float32():
    data = VAEConfig.create("e", "d", 4, decoder_weights="4bit").to_dict()
    assert VAEConfig.from_dict(data).decoder.weights == "4bit"
    data["format_version"] = 3
    del data["decoder"]["weights"]
    assert VAEConfig.from_dict(data).decoder.weights == "float32"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"decoder_weights": "int4"}, "decoder weights must be one of"),
        ({"decoder_weights": "8bit", "decoder_unfreeze_top": 1}, "8bit decoder weights cannot"),
    ],
)
def test_decoder_weights_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        VAEConfig.create("e", "d", 4, **kwargs)


def test_from_json_errors(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        VAEConfig.from_json(path)
    path.write_text(json.dumps({"latent_size": 3}))
    with pytest.raises(ConfigError, match="not an lmvae config"):
        VAEConfig.from_json(path)
    data = VAEConfig.create("e", "d", 4).to_dict()
    data["decoder"]["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        VAEConfig.from_dict(data)


def test_train_config_round_trip_and_validation():
    cfg = TrainConfig(epochs=3, lr=1e-3, beta_cycles=2)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    cfg.validate()
    for bad, message in [
        ({"epochs": 0}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"beta_zero_ratio": 0.6, "beta_ramp_ratio": 0.6}, "beta_zero_ratio"),
        ({"reconstruction": "max"}, "reconstruction"),
        ({"eval_fraction": 1.0}, "eval_fraction"),
    ]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**bad).validate()
    with pytest.raises(ConfigError, match="unknown TrainConfig option"):
        TrainConfig.from_dict({"epochs": 1, "nope": 2})


def test_replace_names_unknown_fields():
    cfg = TrainConfig()
    assert replace(cfg, epochs=2).epochs == 2
    with pytest.raises(ConfigError, match="unknown TrainConfig option"):
        replace(cfg, epoch=2)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr": float("inf")}, "lr must be finite"),
        ({"lr": float("nan")}, "lr must be finite"),
        ({"backbone_lr": float("inf")}, "backbone_lr must be finite"),
        ({"free_bits": float("nan")}, "free_bits must be finite"),
        ({"lr": "1e-3"}, "lr must be a number"),
        ({"epochs": 2.5}, "epochs must be an integer"),
        ({"batch_size": True}, "batch_size must be an integer"),
    ],
)
def test_train_config_refuses_non_finite_and_mistyped_numbers(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes).validate()
