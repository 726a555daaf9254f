"""Configuration dataclasses: one per component, composed into :class:`VAEConfig`.

Everything that shapes the trainable weights lives in :class:`VAEConfig` and is saved with every
checkpoint as ``config.json``; how a run trains lives in :class:`lmvae.train_config.TrainConfig`
and is saved beside the run.  Both round-trip through plain JSON.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from lmvae.errors import ConfigError
from lmvae.prompt_template import check_template

Pooling = Literal["mean", "cls", "last"]
LayerChoice = int | Literal["mix"]
Injection = Literal["prefix", "per_position", "memory", "prompt"]
#: How the frozen decoder's weights are held (DecoderConfig.weights).
DECODER_WEIGHTS = ("float32", "bfloat16", "float16", "8bit", "4bit")
QUANTIZED_WEIGHTS = ("8bit", "4bit")
INJECTIONS = ("prefix", "per_position", "memory", "prompt")
SPACY_ATTRIBUTES = ("pos", "tag", "dep", "ent")
#: The config format this lmvae writes.  2: decoder.slot_init and backbone fingerprints (a
#: format-1 config means slot_init "random", which is what those models were trained with).
#: 3: encoder.label_scale (older conditioned encoders read their label blocks unscaled).
#: 4: decoder.weights (older models loaded their decoder in float32).
FORMAT_VERSION = 4
#: Bound on the latent size: far above any useful one, and refused before the heads are
#: allocated (a typo of a few digits would otherwise fail inside the allocator).
MAX_LATENT_SIZE = 65536


@dataclass
class BackboneRef:
    """Where a frozen backbone comes from: a hub id or a local folder, and its revision."""

    name_or_path: str
    revision: str | None = None
    #: Only ever True when the user asks; never assumed.
    trust_remote_code: bool = False
    #: Fingerprint of a local backbone's weight files when the VAE was saved
    #: (:func:`lmvae.backbones.fingerprint`), so that loading says when they changed.
    fingerprint: str | None = None


@dataclass
class EncoderConfig:
    """The frozen encoder LM and how its token states become one vector."""

    backbone: BackboneRef = field(default_factory=lambda: BackboneRef(""))
    #: How token states are pooled: mean over real tokens, the first token, or the last real token.
    pooling: Pooling = "mean"
    #: Hidden layer to pool: an index into (embeddings, layer 1, ..., layer N), negative from the
    #: end, or "mix" for a learned softmax-weighted mix of all of them.  The default, the mix,
    #: reconstructed best with a real pretrained encoder (docs/benchmarks.md); on tiny encoders
    #: trained on the corpus the embedding layer (0) did (preset "tiny").
    layer: LayerChoice = "mix"
    #: L2-normalise the pooled vector before the posterior head (instead of the default
    #: LayerNorm).
    normalize: bool = False
    #: Starting log-variance of the posterior (the bias of the head's log-variance half).  At 0
    #: the sampling noise (sigma 1) drowns the starting posterior means (spread ~0.6), so the
    #: decoder first learns from noise; at -4 (sigma 0.14) it reads the encoder's signal from
    #: the first step (docs/benchmarks.md).  The tiny preset keeps 0.
    init_logvar: float = -4.0
    #: Factor on each label group's pooled block (annotation-conditioned encoders); None
    #: takes 1 / the number of groups (:func:`lmvae.encoder.label_block_scale` says why).
    label_scale: float | None = None
    #: Encoder input length in tokens; longer inputs are truncated.
    max_length: int = 64
    #: Rank of LoRA adapters (PEFT) on the encoder; 0 leaves it frozen.  They only matter when a
    #: layer above the embeddings is pooled (``layer`` other than 0).
    lora_rank: int = 0
    #: LoRA scaling numerator (the update is scaled by lora_alpha / lora_rank).
    lora_alpha: float = 16.0
    #: Module names LoRA wraps; None takes PEFT's default for the architecture, else all linears.
    lora_targets: list[str] | None = None
    #: Number of top transformer layers of the encoder to fine-tune in full (0: none).
    unfreeze_top: int = 0


@dataclass
class DecoderConfig:
    """The frozen causal LM and how z reaches it."""

    backbone: BackboneRef = field(default_factory=lambda: BackboneRef(""))
    #: Number of key/value slots per layer that z is turned into (the injected prefix length).
    num_slots: int = 16
    #: Rank of the factorised z -> K/V projection; 0 means a full (dense) projection.
    rank: int = 0
    #: Width of a hidden GELU layer in the z -> slots projection (0: a linear map).  Prefix
    #: tuning reparameterises its prefix through such an MLP; a linear map of z can only blend
    #: what the encoder pooled, not pick parts of it out.
    hidden: int = 0
    #: Also add a projection of z to every input embedding (Optimus-style).
    embed_injection: bool = False
    #: How z reaches the attention layers: "prefix" (``num_slots`` K/V slots every position
    #: attends to), "per_position" (one slot per position up to ``max_length``; position t
    #: attends to slots 0..t, as the reference langvae does) or "memory" (Optimus: one vector
    #: per layer used as both key and value, plus z added to every input embedding) or
    #: "prompt" (``num_slots`` input embeddings made from z that the frozen LM reads before the
    #: sentence, a soft prompt: the keys and values it attends to are the LM's own).
    injection: Injection = "prompt"
    #: Decoder sequence length in tokens (targets, EOS included); longer inputs are truncated.
    max_length: int = 64
    #: Rank of LoRA adapters (PEFT) on the decoder; 0 leaves it frozen.
    lora_rank: int = 0
    #: LoRA scaling numerator (the update is scaled by lora_alpha / lora_rank).
    lora_alpha: float = 16.0
    #: Module names LoRA wraps; None takes PEFT's default for the architecture, else all linears.
    lora_targets: list[str] | None = None
    #: Number of top transformer layers of the decoder to fine-tune in full (0: none).
    unfreeze_top: int = 0
    #: How the z -> K/V projection starts: "decoder_kv" calibrates it on the first training
    #: batch so the slots start with the mean and spread of the decoder's own keys and values
    #: of real tokens; "random" keeps PyTorch's default initialisation.
    slot_init: Literal["decoder_kv", "random"] = "random"
    #: Text around the soft prompt (injection "prompt" only), with ``{latent}`` where it goes:
    #: "chat" asks an instruct decoder, in its own chat template, to repeat the latent; "auto"
    #: is "chat" for a decoder tokenizer with a chat template; "none" puts no text around it
    #: (see :mod:`lmvae.prompt_template`).
    prompt_template: str = "none"
    #: How the frozen decoder's weights are held: "float32" (on CPU the training passes run
    #: on bf16 copies and evaluation on these); "bfloat16" / "float16", loaded so, half the
    #: memory (a 7B decoder in ~14 GB); or quantised by bitsandbytes, "8bit" (LLM.int8) or
    #: "4bit" (NF4, bf16 compute), for a decoder that does not fit otherwise.  Saved with the
    #: model, so a trained VAE reloads the decoder it trained with.
    weights: str = "float32"


@dataclass
class AnnotationConfig:
    """Per-word labels (semantic roles, POS ...) as a condition: the label vocabulary and where
    the labels enter the model.  Empty ``labels`` means an unconditioned model.

    Label ids: 0 is padding (special tokens, BOS/EOS, padding: no label), 1 an unknown label,
    then ``labels`` in order from 2.
    """

    #: The label vocabulary, saved with the model.
    labels: list[str] = field(default_factory=list)
    #: Pool encoder token states per label as extra input to the posterior head, so q(z | x, c).
    encoder: bool = True
    #: Add a label embedding to the decoder input at each position (the label of the token that
    #: position predicts), so p(x | z, c).  Generation may then be given labels, or none.
    decoder: bool = False
    #: Fraction of training sentences whose decoder labels are dropped (all padding), so the
    #: decoder also learns to generate without labels.
    decoder_dropout: float = 0.25
    #: Where labels come from when a text has none: "file" (the caller must give them) or
    #: "spacy" (annotated on the fly; needs the ``spacy`` extra and the named pipeline).
    source: Literal["file", "spacy"] = "file"
    #: Field (JSONL) or column (CoNLL) the labels were read from, for the CLI to read again.
    field: str = "labels"
    #: spaCy pipeline and token attribute (pos, tag, dep or ent) for ``source="spacy"``.
    spacy_model: str = "en_core_web_sm"
    spacy_attribute: str = "pos"

    @property
    def enabled(self) -> bool:
        return bool(self.labels)


@dataclass
class PriorConfig:
    """The prior p(z): a standard Gaussian, or a learned Gaussian per category of a sentence
    label (a mixture with one component per category), so p(z | c) = N(mu_c, diag sigma_c^2)."""

    kind: Literal["gaussian", "mixture"] = "gaussian"
    #: The categories of the mixture, in component order; saved with the model.
    categories: list[str] = field(default_factory=list)
    #: Sentence-level field holding the category (JSONL key, or a ``# key = value`` comment in
    #: a CoNLL file).
    field: str = "category"
    #: Standard deviation of the random initial component means (seeded), so components start
    #: apart.
    init_scale: float = 1.0


@dataclass
class VAEConfig:
    """Everything needed to rebuild a :class:`lmvae.LanguageVAE` with identical weights' shapes."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    annotations: AnnotationConfig = field(default_factory=AnnotationConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    #: Size of the latent z.
    latent_size: int = 32
    #: The named preset (lmvae.presets) the settings started from; None: the defaults.
    preset: str | None = None
    #: Format version of this file (see FORMAT_VERSION); older ones are migrated on load.
    format_version: int = FORMAT_VERSION

    @classmethod
    def create(
        cls,
        encoder: str,
        decoder: str,
        latent_size: int = 32,
        **kwargs: Any,
    ) -> VAEConfig:
        """Build a config from two model names, routing keyword overrides to their sections.

        Keys prefixed ``encoder_`` / ``decoder_`` / ``annotations_`` / ``prior_`` go to the
        matching section (e.g. ``encoder_pooling="cls"``, ``decoder_num_slots=8``,
        ``prior_kind="mixture"``); ``annotations`` and ``prior`` may also be given whole (a config
        object or a dict).  ``trust_remote_code`` and ``revision`` apply to both backbones unless
        given per side.
        """
        from lmvae.presets import get_preset

        preset_name = kwargs.pop("preset", None)
        preset = get_preset(preset_name)
        if preset is not None:  # explicit keywords win over the preset
            kwargs = {**preset.model, **kwargs}
        trust = kwargs.pop("trust_remote_code", False)
        revision = kwargs.pop("revision", None)
        sections = {}
        for name, cls_ in (("annotations", AnnotationConfig), ("prior", PriorConfig)):
            whole = kwargs.pop(name, None)
            data = asdict(whole) if isinstance(whole, cls_) else dict(whole or {})
            prefix = f"{name}_"
            data.update(
                {k[len(prefix) :]: kwargs.pop(k) for k in list(kwargs) if k.startswith(prefix)}
            )
            sections[name] = _build(cls_, data)
        enc_kw = {
            k[len("encoder_") :]: kwargs.pop(k) for k in list(kwargs) if k.startswith("encoder_")
        }
        dec_kw = {
            k[len("decoder_") :]: kwargs.pop(k) for k in list(kwargs) if k.startswith("decoder_")
        }
        if kwargs:
            raise ConfigError(f"unknown VAEConfig option(s): {', '.join(sorted(kwargs))}")
        enc_ref = BackboneRef(
            encoder, enc_kw.pop("revision", revision), enc_kw.pop("trust_remote_code", trust)
        )
        dec_ref = BackboneRef(
            decoder, dec_kw.pop("revision", revision), dec_kw.pop("trust_remote_code", trust)
        )
        cfg = cls(
            encoder=_build(EncoderConfig, {"backbone": enc_ref, **enc_kw}),
            decoder=_build(DecoderConfig, {"backbone": dec_ref, **dec_kw}),
            latent_size=latent_size,
            preset=preset_name,
            **sections,
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first setting that cannot work."""
        if isinstance(self.latent_size, bool) or not isinstance(self.latent_size, int):
            raise ConfigError(f"latent_size must be an integer, got {self.latent_size!r}")
        if self.latent_size < 1:
            raise ConfigError(f"latent_size must be >= 1, got {self.latent_size}")
        if self.latent_size > MAX_LATENT_SIZE:
            raise ConfigError(f"latent_size must be <= {MAX_LATENT_SIZE}, got {self.latent_size}")
        if self.encoder.pooling not in ("mean", "cls", "last"):
            raise ConfigError(
                f"encoder pooling must be mean, cls or last, got {self.encoder.pooling!r}"
            )
        if not (isinstance(self.encoder.layer, int) or self.encoder.layer == "mix"):
            raise ConfigError(
                f"encoder layer must be an integer or 'mix', got {self.encoder.layer!r}"
            )
        scale = self.encoder.label_scale
        number = isinstance(scale, int | float) and not isinstance(scale, bool)
        if scale is not None and not (number and scale > 0):
            raise ConfigError(f"encoder label_scale must be a number > 0, got {scale!r}")
        if self.decoder.num_slots < 1:
            raise ConfigError(f"decoder num_slots must be >= 1, got {self.decoder.num_slots}")
        if self.decoder.rank < 0 or self.decoder.hidden < 0:
            raise ConfigError("decoder rank and hidden must be >= 0")
        for name, n in (("encoder", self.encoder.max_length), ("decoder", self.decoder.max_length)):
            if n < 2:
                raise ConfigError(f"{name} max_length must be >= 2, got {n}")
        if self.decoder.slot_init not in ("decoder_kv", "random"):
            raise ConfigError(
                f"decoder slot_init must be decoder_kv or random, got {self.decoder.slot_init!r}"
            )
        if self.decoder.injection not in INJECTIONS:
            raise ConfigError(
                f"unknown decoder injection {self.decoder.injection!r}: use "
                + ", ".join(INJECTIONS)
            )
        if self.decoder.weights not in DECODER_WEIGHTS:
            raise ConfigError(
                f"decoder weights must be one of {', '.join(DECODER_WEIGHTS)}, got "
                f"{self.decoder.weights!r}"
            )
        if self.decoder.weights in QUANTIZED_WEIGHTS and self.decoder.unfreeze_top:
            raise ConfigError(
                f"{self.decoder.weights} decoder weights cannot train: unfreeze no decoder "
                "layers (decoder LoRA adapters train beside quantised weights)"
            )
        check_template(self.decoder.prompt_template)
        if self.decoder.prompt_template not in ("auto", "none") and (
            self.decoder.injection != "prompt"
        ):
            raise ConfigError(
                "a prompt template goes around the soft prompt: it needs decoder injection "
                f"'prompt', not {self.decoder.injection!r}"
            )
        for name, side in (("encoder", self.encoder), ("decoder", self.decoder)):
            if side.lora_rank < 0 or side.unfreeze_top < 0:
                raise ConfigError(f"{name} lora_rank and unfreeze_top must be >= 0")
            if side.lora_rank and side.lora_alpha <= 0:
                raise ConfigError(f"{name} lora_alpha must be > 0, got {side.lora_alpha}")
        self._validate_annotations()
        self._validate_prior()

    def _validate_annotations(self) -> None:
        ann = self.annotations
        if len(set(ann.labels)) != len(ann.labels):
            raise ConfigError("annotation labels must be distinct")
        if ann.enabled and not (ann.encoder or ann.decoder):
            raise ConfigError("annotation labels given but neither encoder nor decoder uses them")
        if not 0 <= ann.decoder_dropout < 1:
            raise ConfigError(f"decoder label dropout must be in [0, 1), got {ann.decoder_dropout}")
        if ann.source not in ("file", "spacy"):
            raise ConfigError(f"annotation source must be file or spacy, got {ann.source!r}")
        if ann.spacy_attribute not in SPACY_ATTRIBUTES:
            raise ConfigError(
                f"unknown spaCy attribute {ann.spacy_attribute!r}: use "
                + ", ".join(SPACY_ATTRIBUTES)
            )

    def _validate_prior(self) -> None:
        prior = self.prior
        if prior.kind not in ("gaussian", "mixture"):
            raise ConfigError(f"prior must be gaussian or mixture, got {prior.kind!r}")
        if prior.kind == "mixture" and len(prior.categories) < 2:
            raise ConfigError(
                f"a mixture prior needs at least 2 categories, got {len(prior.categories)}"
            )
        if len(set(prior.categories)) != len(prior.categories):
            raise ConfigError("prior categories must be distinct")
        if prior.init_scale < 0:
            raise ConfigError(f"prior init_scale must be >= 0, got {prior.init_scale}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAEConfig:
        version = data.get("format_version", 1) if isinstance(data, dict) else None
        if not isinstance(version, int) or version < 1:
            raise ConfigError(f"not an lmvae config: format_version {version!r}")
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"saved by a newer lmvae (config format {version}; this lmvae reads up to "
                f"{FORMAT_VERSION}): upgrade lmvae to load it"
            )
        try:
            enc = dict(data["encoder"])
            dec = dict(data["decoder"])
            if version < 2:  # before slot_init existed, projections started at random
                dec.setdefault("slot_init", "random")
            if version < 3:  # label blocks entered the head unscaled
                enc.setdefault("label_scale", 1.0)
            if version < 4:  # decoders were loaded in float32
                dec.setdefault("weights", "float32")
            enc["backbone"] = BackboneRef(**enc["backbone"])
            dec["backbone"] = BackboneRef(**dec["backbone"])
            cfg = cls(
                encoder=_build(EncoderConfig, enc),
                decoder=_build(DecoderConfig, dec),
                # Absent from configs saved before these sections existed: the defaults are
                # what those models did.
                annotations=_build(AnnotationConfig, dict(data.get("annotations", {}))),
                prior=_build(PriorConfig, dict(data.get("prior", {}))),
                latent_size=int(data["latent_size"]),
                preset=data.get("preset"),
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"not an lmvae config: {e}") from None
        cfg.validate()
        return cfg

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> VAEConfig:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from None
        return cls.from_dict(data)


def _build(cls: type, data: dict[str, Any]) -> Any:
    """Instantiate a dataclass, naming unknown keys instead of raising a bare TypeError."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}")
    return cls(**data)


def replace(cfg: Any, **changes: Any) -> Any:
    """`dataclasses.replace` that reports unknown fields as a ConfigError."""
    unknown = sorted(set(changes) - {f.name for f in fields(cfg)})
    if unknown:
        raise ConfigError(f"unknown {type(cfg).__name__} option(s): {', '.join(unknown)}")
    return dataclasses.replace(cfg, **changes)
