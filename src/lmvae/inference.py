"""The inference API of :class:`lmvae.model.LanguageVAE`: texts -> latents -> texts.

A mixin, as transformers keeps ``generate`` in its GenerationMixin: the model module holds the
parts and the training pass, this one what users call on a built or trained model.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lmvae.conditioning import WordLabels, word_labels_of
from lmvae.errors import ConfigError
from lmvae.generation import GenerationConfig, generate_batches
from lmvae.inputs import check_sentence, sentence_list
from lmvae.objective import reparameterize

if TYPE_CHECKING:
    from lmvae.model import LanguageVAE


def check_latents(z: Tensor, latent_size: int) -> None:
    """Raise a ConfigError naming what is wrong with latents meant to be (N, latent_size)."""
    if not isinstance(z, Tensor):
        raise ConfigError(f"latents must be a tensor (N, {latent_size}), got {type(z)}")
    if z.dim() != 2 or z.shape[1] != latent_size:
        raise ConfigError(f"latents must be (N, {latent_size}), got {tuple(z.shape)}")
    if not z.dtype.is_floating_point:
        raise ConfigError(f"latents must be floating point, got {z.dtype}")
    bad = (~torch.isfinite(z)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise ConfigError(
            f"{len(bad)} latent(s) hold NaN or inf (row {', '.join(map(str, bad[:5]))}): "
            "they decode to nothing meaningful"
        )


def interpolate_latents(za: Tensor, zb: Tensor, steps: int, mode: str = "linear") -> Tensor:
    """Points (steps, D) from za to zb inclusive: linear or spherical (slerp)."""
    t = torch.linspace(0, 1, steps, device=za.device, dtype=za.dtype)[:, None]
    if mode == "linear":
        return (1 - t) * za + t * zb
    if mode != "slerp":
        raise ConfigError(f"unknown interpolation mode {mode!r}: use linear or slerp")
    cos = torch.nn.functional.cosine_similarity(za, zb, dim=0).clamp(-1 + 1e-7, 1 - 1e-7)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return (1 - t) * za + t * zb
    return (torch.sin((1 - t) * omega) * za + torch.sin(t * omega) * zb) / torch.sin(omega)


class InferenceMixin:
    """encode / decode / reconstruct / sample_prior / interpolate for LanguageVAE."""

    @torch.no_grad()
    def posterior(
        self: LanguageVAE,
        texts: Sequence[str],
        batch_size: int = 64,
        word_labels: WordLabels | None = None,
    ) -> tuple[Tensor, Tensor]:
        """mu and logvar (N, D) of each text (given its word labels, if conditioned)."""
        texts = sentence_list(texts)
        if self.encoder.label_groups:
            word_labels = word_labels_of(self, texts, word_labels)
        mus, logvars = [], []
        for i in range(0, len(texts), batch_size):
            rows = None if word_labels is None else word_labels[i : i + batch_size]
            enc = self.encoder_inputs(texts[i : i + batch_size], rows)
            mu, logvar = self.encoder.posterior(self.features(**enc))
            mus.append(mu)
            logvars.append(logvar)
        return torch.cat(mus), torch.cat(logvars)

    @torch.no_grad()
    def encode(
        self: LanguageVAE,
        texts: Sequence[str],
        sample: bool = False,
        batch_size: int = 64,
        generator: torch.Generator | None = None,
        word_labels: WordLabels | None = None,
    ) -> Tensor:
        """Latents (N, D) of texts: the posterior mean, or a sample with ``sample=True``."""
        mu, logvar = self.posterior(texts, batch_size, word_labels)
        return reparameterize(mu, logvar, generator) if sample else mu

    @torch.no_grad()
    def decode(
        self: LanguageVAE,
        z: Tensor,
        generation: GenerationConfig | None = None,
        batch_size: int = 64,
        generator: torch.Generator | None = None,
        word_labels: WordLabels | None = None,
        label_ids: Tensor | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Sentences from latents z (N, D).  Options: a GenerationConfig or its fields as
        keywords (``strategy="beam"``, ``num_beams=4``, ``temperature=0.8`` ...).

        An annotation-conditioned decoder may be given the label of each output token, as
        ``word_labels`` (names; one per word for a word-level decoder tokenizer) or as
        ``label_ids`` (N, L); positions past them, or all without them, get no label.
        """
        rows = self.decode_ids(
            z, generation, batch_size, generator, word_labels, label_ids, **kwargs
        )
        return self.codec.decode(rows)

    @torch.no_grad()
    def decode_ids(
        self: LanguageVAE,
        z: Tensor,
        generation: GenerationConfig | None = None,
        batch_size: int = 64,
        generator: torch.Generator | None = None,
        word_labels: WordLabels | None = None,
        label_ids: Tensor | None = None,
        **kwargs: Any,
    ) -> list[list[int]]:
        """Token ids (without BOS and EOS) decoded from latents z (N, D); :meth:`decode`'s
        options.  A row as long as the output limit ended without EOS."""
        generation = generation or GenerationConfig(**kwargs)
        check_latents(z, self.latent_size)
        z = z.to(self.device, self.encoder.head.weight.dtype)
        if word_labels is not None and label_ids is None:
            label_ids = self.codec.output_labels(word_labels, z.shape[0])
        if self.decoder.label_embed is None:
            label_ids = None
        return generate_batches(
            self.decoder,
            z,
            self.codec.start_id,
            self.eos_id,
            generation,
            generator,
            label_ids,
            batch_size,
        )

    def reconstruct(
        self: LanguageVAE,
        texts: Sequence[str],
        sample: bool = False,
        word_labels: WordLabels | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Encode then decode each text (posterior mean by default); with word labels, both
        sides are conditioned on them (the decoder on the labels of the text's own tokens).

        Takes :meth:`decode`'s options.  Greedy and beam decoding run on sentences of similar
        length together (sorted by token count, results in the input order): a batch decodes
        until its longest row ends, so mixed lengths waste steps.  Sampling keeps the input
        order, which its random draws follow.
        """
        generator = kwargs.pop("generator", None)
        texts = sentence_list(texts)
        if self.config.annotations.enabled:
            word_labels = word_labels_of(self, texts, word_labels)
        z = self.encode(texts, sample=sample, generator=generator, word_labels=word_labels)
        label_ids = None if word_labels is None else self.codec.target_labels(texts, word_labels)
        batch_size = kwargs.pop("batch_size", 64)
        generation = kwargs.pop("generation", None) or GenerationConfig(**kwargs)
        if generation.strategy == "sample":
            return self.decode(z, generation, batch_size, generator, label_ids=label_ids)
        rows = self.codec.decoder_rows(texts)
        order = sorted(range(len(texts)), key=lambda i: len(rows[i]))
        labels = None if label_ids is None else label_ids[order]
        decoded = self.decode(z[order], generation, batch_size, generator, label_ids=labels)
        position = {index: p for p, index in enumerate(order)}
        return [decoded[position[i]] for i in range(len(texts))]

    def sample_prior(
        self: LanguageVAE,
        n: int,
        seed: int | None = None,
        generation: GenerationConfig | None = None,
        category: str | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """n sentences decoded from z ~ p(z), or from p(z | category) with a mixture prior;
        ``seed`` fixes both z and any sampling."""
        if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
            raise ConfigError(f"sample_prior needs a whole number n >= 1 of sentences, got {n!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral)):
            raise ConfigError(f"seed must be an integer or None, got {seed!r}")
        # Without a seed, draw from torch's global RNG so torch.manual_seed governs the result.
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        component = None
        if category is not None:
            component = self.category_ids([category] * n)
        z = self.prior.sample(n, component, generator)
        if seed is not None:
            kwargs.setdefault("generator", torch.Generator(device=self.device).manual_seed(seed))
        return self.decode(z, generation=generation, **kwargs)

    def interpolate(
        self: LanguageVAE, start: str, end: str, steps: int = 5, mode: str = "linear", **kwargs: Any
    ) -> list[str]:
        """Decode ``steps`` points from the latent of ``start`` to that of ``end`` (inclusive),
        on a straight line or (``mode="slerp"``) along the great circle."""
        if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 2:
            raise ConfigError(f"interpolation needs a whole number of steps >= 2, got {steps!r}")
        for name, text in (("start", start), ("end", end)):
            check_sentence(text, name)
        word_labels = kwargs.pop("word_labels", None)
        za, zb = self.encode([start, end], word_labels=word_labels)
        return self.decode(interpolate_latents(za, zb, steps, mode), **kwargs)
