"""The text front end of a :class:`lmvae.LanguageVAE`: its two tokenizers, texts (with optional
word labels) -> encoder and decoder tensors, and decoded token ids -> texts.

Decoder sequences are ``[BOS] tokens`` as input and ``tokens [EOS]`` as target (see
:func:`lmvae.data.collate_decoder`), cut so that tokens + EOS fit ``decoder.max_length``.  The
tensors come back on the CPU; the model moves them to its device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from lmvae.conditioning import (
    WordLabels,
    align_labels,
    label_ids,
    unknown_labels,
    word_label_ids,
)
from lmvae.config import VAEConfig
from lmvae.data import collate_decoder, collate_labels, tokenize_decoder, tokenize_encoder
from lmvae.errors import ConfigError


class TextCodec:
    """Both tokenizers of a model and the lengths, special ids and label vocabulary its config
    gives them.  Word labels go in as names, one per whitespace word of each text; they are
    turned into tensors only for a side of the model that is conditioned on them."""

    def __init__(
        self,
        config: VAEConfig,
        encoder_tokenizer: PreTrainedTokenizerBase,
        decoder_tokenizer: PreTrainedTokenizerBase,
    ):
        self.config = config  # read at each call, so the codec follows the model's config
        self.encoder_tokenizer = encoder_tokenizer
        self.decoder_tokenizer = decoder_tokenizer
        tok = decoder_tokenizer
        self.eos_id: int = tok.eos_token_id
        self.bos_id: int = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.pad_id: int = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        #: The token a decoder sentence starts from: BOS, or a prompt template's last token.
        self.start_id: int = self.bos_id

    @property
    def encoder_labels(self) -> bool:
        """Whether the encoder takes ``token_labels``."""
        return self.config.annotations.enabled and self.config.annotations.encoder

    @property
    def decoder_labels(self) -> bool:
        """Whether the decoder takes ``label_ids``."""
        return self.config.annotations.enabled and self.config.annotations.decoder

    # -- encoder --------------------------------------------------------------------------------
    def encoder_inputs(
        self, texts: Sequence[str], word_labels: WordLabels | None = None
    ) -> dict[str, Tensor]:
        """``input_ids`` and ``attention_mask`` (B, T) with the encoder tokenizer's special
        tokens; with word labels and a conditioned encoder, ``token_labels`` (B, T) as well."""
        length = self.config.encoder.max_length
        if word_labels is None or not self.encoder_labels:
            return tokenize_encoder(self.encoder_tokenizer, texts, length)
        ids = word_label_ids(texts, word_labels, self.config.annotations.labels)
        enc, rows = align_labels(
            self.encoder_tokenizer, texts, ids, padding=True, truncation=True, max_length=length
        )
        return {
            "input_ids": torch.tensor(enc["input_ids"]),
            "attention_mask": torch.tensor(enc["attention_mask"]),
            "token_labels": torch.tensor(rows),
        }

    # -- decoder --------------------------------------------------------------------------------
    def decoder_rows(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text without special tokens, cut so that ids + EOS fit."""
        return tokenize_decoder(self.decoder_tokenizer, texts, self.config.decoder.max_length)

    def collate(
        self,
        rows: Sequence[Sequence[int]],
        pad_to_multiple_of: int = 1,
        start_id: int | None = None,
    ) -> dict[str, Tensor]:
        """Token rows -> ``input_ids`` ``[start] x``, ``labels`` ``x [EOS]``, ``attention_mask``
        (B, T), right-padded; the start token is :attr:`start_id` unless given."""
        start = self.start_id if start_id is None else start_id
        return collate_decoder(rows, start, self.eos_id, self.pad_id, pad_to_multiple_of)

    def decoder_inputs(
        self, texts: Sequence[str], word_labels: WordLabels | None = None
    ) -> dict[str, Tensor]:
        """Teacher-forcing tensors of texts (:meth:`collate`); with word labels and a
        conditioned decoder, ``label_ids`` (B, T): the label of the token each position
        predicts."""
        rows = self.decoder_rows(texts)
        if any(len(r) == 0 for r in rows):
            raise ConfigError("an empty sentence cannot be reconstructed")
        batch = self.collate(rows)
        if word_labels is not None and self.decoder_labels:
            label_rows = self.decoder_label_rows(texts, word_labels)
            batch["label_ids"] = collate_labels(label_rows, batch["input_ids"].shape[1])
        return batch

    def decoder_label_rows(self, texts: Sequence[str], word_labels: WordLabels) -> list[list[int]]:
        """Label id of each decoder target token (the rows of :meth:`decoder_rows`)."""
        ids = word_label_ids(texts, word_labels, self.config.annotations.labels)
        _, rows = align_labels(self.decoder_tokenizer, texts, ids, add_special_tokens=False)
        return [row[: self.config.decoder.max_length - 1] for row in rows]

    def target_labels(self, texts: Sequence[str], word_labels: WordLabels) -> Tensor | None:
        """Label ids (B, L + 1) of the tokens of texts, for decoding them again (the last
        position, EOS, has none); None for a decoder not conditioned on labels."""
        if not self.decoder_labels:
            return None
        rows = self.decoder_label_rows(texts, word_labels)
        return collate_labels(rows, max(len(r) for r in rows) + 1)

    def output_labels(self, word_labels: WordLabels, n: int) -> Tensor | None:
        """Label ids (n, L) of the tokens to generate, given by name, one row per output;
        None for a decoder not conditioned on labels."""
        if len(word_labels) != n:
            raise ConfigError(f"{len(word_labels)} label rows for {n} latents")
        if not self.decoder_labels:
            return None
        # Labels named by the caller for generation: a typo would silently mean "unknown".
        unknown = unknown_labels(word_labels, self.config.annotations.labels)
        if unknown:
            raise ConfigError(
                f"label(s) {', '.join(map(repr, sorted(unknown)[:5]))} are not in the model's "
                f"label vocabulary ({', '.join(self.config.annotations.labels[:12])}"
                f"{', ...' if len(self.config.annotations.labels) > 12 else ''})"
            )
        rows = [label_ids(row, self.config.annotations.labels) for row in word_labels]
        return collate_labels(rows, max(1, *(len(r) for r in rows)))

    def notes(self, texts: Sequence[str], word_labels: WordLabels | None = None) -> list[str]:
        """What reading ``texts`` quietly changes, one line each (empty: nothing): sentences
        cut at the encoder's or the decoder's max_length, and word labels outside the model's
        vocabulary (read as the unknown label).  Tokenises the texts once more."""
        lines = []
        sides = (
            ("encoder", self.encoder_tokenizer, True, self.config.encoder.max_length),
            # The decoder keeps max_length - 1 tokens: EOS takes the last place.
            ("decoder", self.decoder_tokenizer, False, self.config.decoder.max_length - 1),
        )
        for side, tokenizer, special, keep in sides:
            ids = tokenizer(list(texts), add_special_tokens=special)["input_ids"]
            cut = sum(len(row) > keep for row in ids)
            if cut:
                lines.append(
                    f"{cut} of {len(ids)} sentences are longer than the {side}'s max_length "
                    f"and are cut to {keep} tokens (a longer --max-length keeps them whole)"
                )
        ann = self.config.annotations
        if word_labels is not None and ann.enabled:
            unknown = unknown_labels(word_labels, ann.labels)
            if unknown:
                total = sum(len(row) for row in word_labels)
                common = sorted(unknown.items(), key=lambda kv: -kv[1])[:5]
                lines.append(
                    f"{sum(unknown.values())} of {total} word labels are not in the model's "
                    f"label vocabulary and are read as the unknown label: "
                    + ", ".join(f"{lab!r} x{n}" for lab, n in common)
                    + (", ..." if len(unknown) > 5 else "")
                )
        return lines

    def decode(self, rows: Sequence[Sequence[int]]) -> list[str]:
        """Token id rows -> texts, without special tokens or surrounding space."""
        return [self.decoder_tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]
