"""A frozen causal LM steered by z: teacher-forced token losses and single decoding steps.

z becomes a soft prompt the frozen LM reads before the sentence (the default), or K/V slots in
every layer (:mod:`lmvae.injection`) wrapped as a cache prefix (:mod:`lmvae.cache`).  The LM's
base model gives hidden states and its output embedding gives logits, so the loss is computed
on real (non-padding) positions only.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import DynamicCache, PreTrainedModel

from lmvae.cache import (
    cache_kv_shape,
    causal_slot_mask,
    kv_statistics,
    position_ids,
    prefix_attention_mask,
    prefix_cache,
)
from lmvae.config import DecoderConfig
from lmvae.errors import ConfigError
from lmvae.head import HeadQuirks, head_cross_entropy, head_logits
from lmvae.injection import LatentInjector
from lmvae.precision import eager_attention
from lmvae.prompt_pass import PromptPassMixin

IGNORE_INDEX = -100


@dataclass
class TokenLoss:
    """Per-sentence teacher-forced reconstruction figures."""

    nll: Tensor  # (B,) summed token cross-entropy
    num_tokens: Tensor  # (B,) target tokens per sentence
    num_correct: Tensor  # (B,) argmax hits per sentence


@dataclass
class DecodingState:
    """What one decoding step needs besides the next input tokens."""

    cache: DynamicCache
    attention_mask: Tensor  # (B, slots + generated so far)
    embed_offset: Tensor | None  # (B, H) or None
    position: int  # position id of the next token
    label_ids: Tensor | None = None  # (B, L) label id per position (annotation-conditioned)


class LatentDecoder(PromptPassMixin, nn.Module):
    """A frozen causal LM plus the trainable z -> K/V projections (and, with ``num_labels``, a
    label embedding added to the input at each position)."""

    def __init__(
        self, lm: PreTrainedModel, config: DecoderConfig, latent_size: int, num_labels: int = 0
    ):
        super().__init__()
        self.lm = lm
        self.config = config
        self.kv_shape = cache_kv_shape(lm)  # as the LM's own cache holds keys and values
        slots = config.max_length if config.injection == "per_position" else config.num_slots
        self.injector = LatentInjector(
            latent_size,
            self.kv_shape,
            slots,
            config.rank,
            config.embed_injection,
            config.injection,
            config.hidden,
        )
        self.label_embed = None
        if num_labels:
            # Ids 0 (padding) and 1 (unknown) come first.  Zero-initialised, like the embedding
            # offset, so conditioning starts with no effect on the frozen decoder; padding stays
            # zero (no gradient), so "no label" in training is exactly decoding without labels.
            self.label_embed = nn.Embedding(num_labels + 2, self.kv_shape.hidden_size, 0)
            nn.init.zeros_(self.label_embed.weight)
        self.head_quirks = HeadQuirks.from_config(lm.config)
        # transformers >= 5.2x names the argument `cache`; older versions `past_key_values`.
        params = inspect.signature(self.base.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # torch.compile of the trunk for the soft prompt's training pass (compile_training_pass);
        # kept out of the module tree so it is neither saved nor moved twice.
        self.__dict__["_compiled_base"] = None
        # Whether the soft prompt's training pass packs the batch (pack_training_pass).
        self.pack = False
        # Token ids of a prompt template's text before and after the soft prompt (empty: none).
        self.register_buffer("template_prefix", torch.zeros(0, dtype=torch.long), False)
        self.register_buffer("template_suffix", torch.zeros(0, dtype=torch.long), False)

    def set_template(self, prefix: list[int], suffix: list[int]) -> None:
        """Put the tokens of a prompt template's text before and after the soft prompt
        (:mod:`lmvae.prompt_template`)."""
        if self.injector.mode != "prompt":
            raise ConfigError("a prompt template needs decoder injection 'prompt'")
        device = self.template_prefix.device
        self.template_prefix = torch.tensor(prefix, dtype=torch.long, device=device)
        self.template_suffix = torch.tensor(suffix, dtype=torch.long, device=device)

    @property
    def spread_or_quantized(self) -> bool:
        """Whether the LM is spread over devices (device_map) or quantised by bitsandbytes:
        placed where it loaded, never moved as a whole."""
        devices = set((getattr(self.lm, "hf_device_map", None) or {}).values())
        return len(devices) > 1 or getattr(self.lm, "hf_quantizer", None) is not None

    # -- pieces of the LM -------------------------------------------------------------------
    @property
    def base(self) -> nn.Module:
        """The LM without its head (returns last hidden states after the final norm)."""
        return self.lm.base_model

    def logits(self, hidden: Tensor) -> Tensor:
        """Hidden states (..., H) -> vocabulary logits (..., V), as the LM's own head does."""
        return head_logits(self.lm, self.head_quirks, hidden)

    def _run(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        positions: Tensor,
        cache: DynamicCache,
        embed_offset: Tensor | None,
        attentions: list | None = None,
    ) -> Tensor:
        if embed_offset is None:
            inputs = {"input_ids": input_ids}
        else:
            embeds = self.lm.get_input_embeddings()(input_ids)
            if embed_offset.dim() == 2:  # one offset for every position
                embed_offset = embed_offset[:, None, :]
            inputs = {"inputs_embeds": embeds + embed_offset.to(embeds.dtype)}
        out = self.base(
            **inputs,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=True,
            output_attentions=attentions is not None,
            **{self._cache_arg: cache},
        )
        if attentions is not None:
            attentions.extend(out.attentions)
        return out.last_hidden_state

    def prefix_layers(
        self, z: Tensor, dtype: torch.dtype | None = None
    ) -> tuple[list[tuple[Tensor, Tensor]], Tensor | None]:
        """z (B, D) -> per layer the injected (keys, values) (B, kv_heads, slots, head_dim) in
        ``dtype`` (default: the LM's), and the embedding offset."""
        by_row, offset = self.injector(z)  # (B, layers, 2, kv_heads, slots, head_dim)
        dtype = dtype or self.lm.get_input_embeddings().weight.dtype
        # The cast runs on the flat (B, numbers) matrix: on the 6-D view it is ~3x slower on CPU.
        if by_row.dtype != dtype:
            by_row = by_row.reshape(by_row.shape[0], -1).to(dtype).view(by_row.shape)
        # One unbind over (layer, key/value) pairs: its backward stacks the 2 x layers gradients
        # once (nested unbinds stacked the full K/V gradient twice).
        batch, layers = by_row.shape[:2]
        flat = by_row.reshape(batch, 2 * layers, *by_row.shape[3:]).unbind(1)
        return list(zip(flat[0::2], flat[1::2], strict=True)), offset

    def prefix(self, z: Tensor) -> tuple[DynamicCache, Tensor | None]:
        """z (B, D) -> a cache holding the injected slots, and the embedding offset."""
        if self.injector.mode == "prompt":
            return self._prompt_cache(z), None
        layers, offset = self.prefix_layers(z)
        # Per-position slots need every layer to keep every slot, so their cache is built
        # without the config's sliding-window layers (which would drop old slots).
        config = None if self.injector.causal_slots else self.lm.config
        return prefix_cache(layers, config), offset

    def soft_prompt(self, z: Tensor) -> Tensor:
        """z (B, D) -> the prompt's input embeddings (B, prompt length, H) in the LM's dtype:
        the template's text embeddings around the vectors made from z."""
        embed = self.lm.get_input_embeddings()
        vectors = self.injector(z)[0].to(embed.weight.dtype)  # (B, slots, H)
        if not self.template_prefix.numel() and not self.template_suffix.numel():
            return vectors
        batch = z.shape[0]
        parts = [embed(self.template_prefix), None, embed(self.template_suffix)]
        return torch.cat(
            [vectors if p is None else p[None].expand(batch, -1, -1) for p in parts], 1
        )

    def _prompt_cache(self, z: Tensor) -> DynamicCache:
        """Run the soft prompt made from z through the LM at positions 0..slots-1; its cache is
        the prefix the sentence attends to (differentiable in z)."""
        embeds = self.soft_prompt(z)
        batch, slots = embeds.shape[:2]
        cache = prefix_cache([], self.lm.config)
        positions = torch.arange(slots, device=z.device).expand(batch, -1)
        self.base(
            inputs_embeds=embeds,
            attention_mask=torch.ones(batch, slots, dtype=torch.long, device=z.device),
            position_ids=positions,
            use_cache=True,
            **{self._cache_arg: cache},
        )
        return cache

    @property
    def position_offset(self) -> int:
        """Where the sentence's positions start: after a soft prompt, which holds real
        positions; at 0 otherwise, so that slots do not shift the sentence's positions."""
        return self.num_slots if self.injector.mode == "prompt" else 0

    def calibrate_prompt(self) -> None:
        """Start a soft prompt among the LM's own input embeddings."""
        self.injector.calibrate_prompt(self.lm.get_input_embeddings().weight)

    @torch.no_grad()
    def kv_statistics(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation (layers, 2, kv_heads, head_dim) of the LM's own keys and
        values over the real tokens of a batch (BOS, an attention sink, left out), read from
        the cache its forward returns."""
        cache = DynamicCache()  # full layers: no window drops a token
        self.base(
            input_ids=input_ids,
            attention_mask=attention_mask,
            use_cache=True,
            **{self._cache_arg: cache},
        )
        real = attention_mask.bool().clone()
        real[:, 0] = False
        return kv_statistics(cache, real, self.kv_shape.num_layers)

    def calibrate_slots(self, input_ids: Tensor, attention_mask: Tensor) -> None:
        """Start the slots in the distribution of the LM's own keys and values on a batch of
        real text (see :meth:`LatentInjector.calibrate`)."""
        self.injector.calibrate(*self.kv_statistics(input_ids, attention_mask))

    @property
    def num_slots(self) -> int:
        """Injected K/V slots per layer; for a soft prompt, its length (template text
        included)."""
        extra = self.template_prefix.numel() + self.template_suffix.numel()
        return self.injector.num_slots + extra

    def _attention(self, mask: Tensor, positions: Tensor) -> Tensor:
        """The mask the LM gets: the 2-D slots + tokens mask, or for per-position injection the
        4-D mask that hides slots of later positions."""
        if not self.injector.causal_slots:
            return mask
        impl = getattr(self.lm.config, "_attn_implementation", None)
        dtype = self.lm.get_input_embeddings().weight.dtype
        return causal_slot_mask(mask, positions, self.num_slots, impl, dtype)

    def _label_offset(self, offset: Tensor | None, label_ids: Tensor | None) -> Tensor | None:
        """Add the label embeddings (B, T, H) of label_ids (B, T) to the z offset (B, H)."""
        if self.label_embed is None or label_ids is None:
            return offset
        labels = self.label_embed(label_ids)
        return labels if offset is None else labels + offset[:, None, :]

    # -- training -----------------------------------------------------------------------------
    def hidden_states(
        self,
        z: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        label_ids: Tensor | None = None,
        attentions: list | None = None,
    ) -> Tensor:
        """Teacher-forced last hidden states (B, T, H) of the LM given z (and the label id
        (B, T) of the token each position predicts, when annotation-conditioned); each
        layer's attention weights are appended to ``attentions`` when given."""
        if self.injector.mode == "prompt":
            return self._prompt_pass(z, input_ids, attention_mask, label_ids, attentions)
        cache, offset = self.prefix(z)
        positions = position_ids(attention_mask) + self.position_offset
        mask = self._attention(prefix_attention_mask(attention_mask, self.num_slots), positions)
        offset = self._label_offset(offset, label_ids)
        return self._run(input_ids, mask, positions, cache, offset, attentions)

    @torch.no_grad()
    def slot_attention(self, z: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Attention mass (layers, B, T) each layer puts on the injected slots (or the soft
        prompt) at each position, averaged over heads: are the slots ignored, or do they swamp
        the sentence's own context?  Runs the eager attention, which reports its weights."""
        attentions: list[Tensor] = []
        with eager_attention(self.lm):
            self.hidden_states(z, input_ids, attention_mask, attentions=attentions)
        if not attentions or attentions[0] is None:
            raise ConfigError("this decoder does not report its attention weights")
        # (B, heads, T, slots + T) per layer -> mass on the first `slots` keys.
        return torch.stack([a[..., : self.num_slots].sum(-1).mean(1) for a in attentions])

    def token_loss(
        self,
        z: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        labels: Tensor,
        label_ids: Tensor | None = None,
    ) -> TokenLoss:
        """One teacher-forced pass; cross-entropy only where labels != IGNORE_INDEX."""
        target = labels != IGNORE_INDEX  # (B, T)
        hidden = self.hidden_states(z, input_ids, attention_mask, label_ids)[target]
        rows = target.nonzero(as_tuple=True)[0]
        gold = labels[target]
        # Never the padded positions.
        nll, hits = head_cross_entropy(self.lm, self.head_quirks, hidden, gold)
        batch = labels.shape[0]
        zeros = torch.zeros(batch, device=labels.device)
        return TokenLoss(
            nll=zeros.index_add(0, rows, nll),
            num_tokens=target.sum(1),
            num_correct=zeros.index_add(0, rows, hits.float()),
        )

    # -- decoding -----------------------------------------------------------------------------
    def start(self, z: Tensor, label_ids: Tensor | None = None) -> DecodingState:
        """A decoding state holding only the injected prefix; label_ids (B, L) give the label of
        each output position (padding past L), for an annotation-conditioned decoder."""
        cache, offset = self.prefix(z)
        mask = torch.ones(z.shape[0], self.num_slots, dtype=torch.long, device=z.device)
        return DecodingState(cache, mask, offset, 0, label_ids)

    def step(self, input_ids: Tensor, state: DecodingState) -> Tensor:
        """Feed input_ids (B, 1) at the state's position; return next-token logits (B, V) in
        the decoder's compute dtype (bf16 when decoding in bf16: greedy decoding needs only
        their argmax, and a float copy of 32 x 50,257 logits costs more than the step's head).

        The state is advanced in place (cache grows by one, mask by one column).
        """
        batch = input_ids.shape[0]
        state.attention_mask = torch.cat(
            [state.attention_mask, state.attention_mask.new_ones(batch, 1)], dim=1
        )
        positions = torch.full(
            (batch, 1),
            state.position + self.position_offset,
            dtype=torch.long,
            device=input_ids.device,
        )
        offset = state.embed_offset
        if self.label_embed is not None and state.label_ids is not None:
            column = state.label_ids[:, state.position : state.position + 1]
            if column.shape[1] == 0:  # past the given labels: padding
                column = torch.zeros_like(input_ids)
            offset = self._label_offset(offset, column)
        mask = self._attention(state.attention_mask, positions)
        hidden = self._run(input_ids, mask, positions, state.cache, offset)
        state.position += 1
        return self.logits(hidden[:, -1])
