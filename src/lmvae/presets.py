"""Named sets of settings, for backbones the defaults are not meant for.

The defaults of :class:`VAEConfig` and :class:`TrainConfig` are chosen on real pretrained
backbones (all-MiniLM-L6-v2 -> SmolLM2-135M on WordNet; docs/benchmarks.md).  Tiny backbones
pretrained on the very corpus they reconstruct (the demo, the reference's test models) learn
best with other settings; a preset names them, is asked for explicitly, and is recorded in
``config.json`` (never guessed from model size).  Settings given explicitly win over a preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmvae.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """Overrides of the defaults: ``model`` as :meth:`VAEConfig.create` keywords, ``train``
    as :class:`TrainConfig` fields."""

    description: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "small LMs pretrained on the corpus itself (the demo, the reference's bert-tiny / "
        "gpt2-tiny): the embedding layer pooled, 16 prefix K/V slots, posterior log-variance "
        "starting at 0, learning rate 1e-2, 32 sentences per step",
        model={
            "decoder_injection": "prefix",
            "decoder_hidden": 0,
            "encoder_layer": 0,
            "encoder_init_logvar": 0.0,
        },
        train={"lr": 1e-2, "batch_size": 32},
    ),
}


def get_preset(name: str | None) -> Preset | None:
    """The preset called ``name`` (None: the defaults); a ConfigError names the known ones."""
    if name is None:
        return None
    if name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError(f"unknown preset {name!r}: known presets are {known}")
    return PRESETS[name]
