"""LanguageVAE: text -> tokens -> pooled features -> z -> K/V prefix -> logits.

The model does no file or console I/O; saving and loading live in :mod:`lmvae.checkpoint` and
are exposed here under the Hugging Face names.  Texts become tensors in :mod:`lmvae.codec` (the
model's ``codec``), word labels and categories become conditions in :mod:`lmvae.conditioning`;
encode / decode / reconstruct and the rest of the inference API are in :mod:`lmvae.inference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lmvae import checkpoint
from lmvae.adapters import adapt, check_encoder_adaptation, follow_mode
from lmvae.annotations import AnnotatedCorpus
from lmvae.backbones import load_decoder, load_encoder
from lmvae.codec import TextCodec
from lmvae.conditioning import WordLabels, annotate
from lmvae.config import VAEConfig
from lmvae.decoder import LatentDecoder, TokenLoss
from lmvae.encoder import SentenceEncoder
from lmvae.errors import ConfigError
from lmvae.inference import InferenceMixin
from lmvae.objective import reparameterize
from lmvae.prior import build_prior
from lmvae.prompt_template import template_ids

#: State-dict prefixes of the frozen backbones; everything else is trainable and saved.
BACKBONE_PREFIXES = ("encoder.backbone.", "decoder.lm.")


@dataclass
class VAEOutput:
    """What one forward pass gives the objective."""

    mu: Tensor  # (B, D)
    logvar: Tensor  # (B, D)
    z: Tensor  # (B, D)
    kl_per_dim: Tensor  # (B, D)
    tokens: TokenLoss


class LanguageVAE(InferenceMixin, nn.Module):
    """A VAE whose encoder and decoder are frozen pretrained LMs; only small heads train.

    Build one with :meth:`from_backbones` (two model names or folders) or load a trained one
    with :meth:`from_pretrained`.
    """

    def __init__(
        self,
        config: VAEConfig,
        encoder: PreTrainedModel,
        encoder_tokenizer: PreTrainedTokenizerBase,
        decoder: PreTrainedModel,
        decoder_tokenizer: PreTrainedTokenizerBase,
        seed: int = 0,
    ):
        super().__init__()
        config.validate()
        self.config = config
        ann = config.annotations
        num_labels = len(ann.labels)
        check_encoder_adaptation(config.encoder, encoder.config)
        # The trainable heads start from `seed` whatever the global RNG went through before
        # (loading backbones draws from it), so the same call builds the same model.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = SentenceEncoder(
                encoder, config.encoder, config.latent_size, num_labels if ann.encoder else 0
            )
            self.decoder = LatentDecoder(
                decoder, config.decoder, config.latent_size, num_labels if ann.decoder else 0
            )
            self.prior = build_prior(config.prior, config.latent_size)
            for side, backbone in ((config.encoder, encoder), (config.decoder, decoder)):
                adapt(
                    backbone, side.lora_rank, side.lora_alpha, side.lora_targets, side.unfreeze_top
                )
        self.codec = TextCodec(config, encoder_tokenizer, decoder_tokenizer)
        if config.decoder.injection == "prompt":
            template = template_ids(config.decoder.prompt_template, decoder_tokenizer)
            if template is not None:
                self.decoder.set_template(template.prefix, template.suffix)
                self.codec.start_id = template.start_id
        self.base_dir: str | None = None  # folder the config's relative backbone paths start from

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_backbones(
        cls,
        encoder: str,
        decoder: str,
        latent_size: int = 32,
        seed: int = 0,
        allow_pickle: bool = False,
        device_map: Any = None,
        **kwargs: Any,
    ) -> LanguageVAE:
        """A fresh VAE from an encoder and a decoder name (hub id or folder).

        Keyword options go to :meth:`VAEConfig.create`, e.g. ``encoder_layer=0``,
        ``encoder_pooling="mean"``, ``decoder_num_slots=8``, ``decoder_weights="bfloat16"``.
        Backbones load from safetensors or GGUF; ``allow_pickle=True`` also reads pickled
        weights.  ``device_map`` spreads the decoder over devices (transformers' own, e.g.
        ``"auto"``) for one larger than a device; the rest of the model goes where
        :meth:`place` puts it.
        """
        config = VAEConfig.create(encoder, decoder, latent_size, **kwargs)
        return cls.from_config(config, seed=seed, allow_pickle=allow_pickle, device_map=device_map)

    @classmethod
    def from_config(
        cls,
        config: VAEConfig,
        base_dir: str | Path | None = None,
        seed: int = 0,
        allow_pickle: bool = False,
        device_map: Any = None,
    ) -> LanguageVAE:
        """Load the backbones a config names and build untrained heads (seeded) around them."""
        config.validate()  # before loading anything: a bad setting fails at once
        enc, enc_tok = load_encoder(config.encoder.backbone, base_dir, allow_pickle=allow_pickle)
        dec, dec_tok = load_decoder(
            config.decoder.backbone,
            base_dir,
            config.decoder.weights,
            allow_pickle=allow_pickle,
            device_map=device_map,
        )
        model = cls(config, enc, enc_tok, dec, dec_tok, seed=seed)
        model.base_dir = str(base_dir) if base_dir is not None else None
        return model

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs: Any) -> LanguageVAE:
        """Load a trained VAE from a folder written by :meth:`save_pretrained` or a hub repo."""
        return checkpoint.load_pretrained(cls, name_or_path, **kwargs)

    def save_pretrained(self, save_directory: str | Path, bundle_backbones: bool = False) -> Path:
        """Write config.json + model.safetensors (trainable weights only).

        Backbones are referenced by hub id or by a path relative to the folder; with
        ``bundle_backbones=True`` they are copied inside it so the folder stands alone.
        """
        return checkpoint.save_pretrained(self, save_directory, bundle_backbones=bundle_backbones)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload the saved model to the Hugging Face Hub; returns the commit URL."""
        return checkpoint.push_to_hub(self, repo_id, **kwargs)

    # -- bookkeeping ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.encoder.head.weight.device

    def place(self, device: torch.device | str) -> LanguageVAE:
        """Move the model to ``device``, except a decoder that ``device_map`` spread over
        several devices or that bitsandbytes quantised where it loaded: those stay put (their
        hooks move activations between devices)."""
        if not self.decoder.spread_or_quantized:
            return self.to(device)
        lm = self.decoder.lm
        del self.decoder._modules["lm"]
        try:
            self.to(device)
        finally:
            self.decoder._modules["lm"] = lm
        return self

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    # The tokenizer front end under the names callers know; :attr:`codec` owns them.
    encoder_tokenizer = property(lambda self: self.codec.encoder_tokenizer)
    decoder_tokenizer = property(lambda self: self.codec.decoder_tokenizer)
    bos_id = property(lambda self: self.codec.bos_id)
    eos_id = property(lambda self: self.codec.eos_id)
    pad_id = property(lambda self: self.codec.pad_id)

    def train(self, mode: bool = True) -> LanguageVAE:
        """Backbones stay in eval mode (no dropout) whatever mode the heads are in, also when
        LoRA or unfrozen layers train them: their features stay deterministic."""
        super().train(mode)
        for backbone in (self.encoder.backbone, self.decoder.lm):
            backbone.eval()
            follow_mode(backbone, mode)  # gradient checkpointing needs its blocks in training
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameters of the whole model, backbones included, or only those that train."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """The weights that are saved: everything outside the backbones, and the backbone
        weights that train (LoRA adapters, unfrozen layers)."""
        trains = {k for k, p in self.named_parameters() if p.requires_grad}
        return {
            k: v
            for k, v in self.state_dict().items()
            if not k.startswith(BACKBONE_PREFIXES) or k in trains
        }

    # -- conditions -----------------------------------------------------------------------------
    @property
    def label_vocabulary(self) -> list[str]:
        """The word labels the model is conditioned on (empty: unconditioned)."""
        return list(self.config.annotations.labels)

    def annotate(
        self, data: Sequence[str] | AnnotatedCorpus, categories: bool = True
    ) -> AnnotatedCorpus:
        """The corpus completed and checked for the model (:func:`conditioning.annotate`)."""
        return annotate(self, data, categories)

    def category_ids(self, categories: Sequence[str]) -> Tensor:
        """Category names -> prior component ids (N,); raises for a name not in the prior."""
        return self.prior.category_ids(list(categories))

    # -- the pipeline ---------------------------------------------------------------------------
    def encoder_inputs(
        self, texts: Sequence[str], word_labels: WordLabels | None = None
    ) -> dict[str, Tensor]:
        """:meth:`TextCodec.encoder_inputs` on the model's device."""
        return _to(self.codec.encoder_inputs(texts, word_labels), self.device)

    def decoder_inputs(
        self, texts: Sequence[str], word_labels: WordLabels | None = None
    ) -> dict[str, Tensor]:
        """:meth:`TextCodec.decoder_inputs` on the model's device."""
        return _to(self.codec.decoder_inputs(texts, word_labels), self.device)

    def features(
        self, input_ids: Tensor, attention_mask: Tensor, token_labels: Tensor | None = None
    ) -> Tensor:
        """Pooled encoder features (B, S, H) (or (B, S, 1 + G, H) when annotation-conditioned);
        cacheable per sentence while the encoder backbone is frozen."""
        return self.encoder.features(input_ids, attention_mask, token_labels)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        labels: Tensor,
        encoder_input_ids: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        features: Tensor | None = None,
        sample: bool = True,
        generator: torch.Generator | None = None,
        token_labels: Tensor | None = None,
        label_ids: Tensor | None = None,
        category: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> VAEOutput:
        """One teacher-forced pass.  Give the encoder either its tokens or cached ``features``;
        the decoder tensors come from :meth:`decoder_inputs`.

        Conditions: ``token_labels`` (B, T_enc) for an annotation-conditioned encoder,
        ``label_ids`` (B, T) for a conditioned decoder (in training a fraction of rows is
        dropped to padding), ``category`` (B,) component ids for a mixture prior.

        ``noise`` (B, D + 1) gives the random draws instead of ``generator``: standard normal,
        for z, and in its last column for the label dropout (through the normal CDF); the
        trainer seeds it per sentence (:func:`lmvae.objective.sentence_noise`).
        """
        if features is None:
            if encoder_input_ids is None or encoder_attention_mask is None:
                raise ConfigError(
                    "forward needs encoder_input_ids/encoder_attention_mask or features"
                )
            features = self.features(encoder_input_ids, encoder_attention_mask, token_labels)
        mu, logvar = self.encoder.posterior(features)
        eps = None if noise is None else noise[:, : mu.shape[1]]
        z = reparameterize(mu, logvar, generator, eps) if sample else mu
        dropout = self.config.annotations.decoder_dropout
        if label_ids is not None and self.training and dropout > 0:
            if noise is not None:
                keep = torch.special.ndtr(noise[:, -1].to(label_ids.device))
            else:
                keep = torch.rand(label_ids.shape[0], generator=generator, device=label_ids.device)
            label_ids = label_ids * (keep >= dropout)[:, None].to(label_ids.dtype)
        tokens = self.decoder.token_loss(z, input_ids, attention_mask, labels, label_ids)
        return VAEOutput(mu, logvar, z, self.prior.kl(mu, logvar, category), tokens)


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in batch.items()}
