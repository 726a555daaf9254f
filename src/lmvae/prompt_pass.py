"""The soft prompt's training pass, a mixin of :class:`lmvae.decoder.LatentDecoder`.

Decoding runs the soft prompt once into a cache and then the tokens against it; training runs
the prompt and the sentence in one cache-free call instead (the same computation).  Only such a
call can be packed (:mod:`lmvae.packing`), compiled or gradient-checkpointed, since a cache
filled in place allows none of them.  Other injections pass a cache and keep the plain pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lmvae.adapters import checkpoint_blocks, follow_mode
from lmvae.cache import position_ids, prefix_attention_mask
from lmvae.errors import ConfigError
from lmvae.packing import check_packing, packed_forward

if TYPE_CHECKING:
    from lmvae.decoder import LatentDecoder


class PromptPassMixin:
    """Training-pass options of a decoder whose z enters as a soft prompt (injection "prompt"):
    packing, torch.compile, gradient checkpointing."""

    def _check_prompt_pass(self: LatentDecoder, what: str) -> None:
        """Raise unless the training pass is the soft prompt's cache-free one, which ``what``
        (compile, gradient checkpointing, packing) needs."""
        if self.injector.mode != "prompt":
            raise ConfigError(
                f"{what} applies to the soft prompt's training pass (decoder injection "
                f"'prompt'); injection {self.injector.mode!r} passes a cache"
            )

    def compile_training_pass(self: LatentDecoder) -> None:
        """Compile the trunk for the soft prompt's cache-free training pass (torch.compile,
        dynamic shapes).  Evaluation and decoding keep the eager trunk: they run with a cache
        and at batch shapes that would only recompile."""
        self._check_prompt_pass("compile")
        if self._compiled_base is None:
            self.__dict__["_compiled_base"] = torch.compile(self.base, dynamic=True)

    def checkpoint_training_pass(self: LatentDecoder) -> None:
        """Recompute the trunk's blocks in backward (gradient checkpointing): the soft
        prompt's training pass is cache-free, which checkpointing needs."""
        self._check_prompt_pass("gradient checkpointing")
        checkpoint_blocks(self.lm)
        follow_mode(self.lm, self.training)

    def _prompt_pass(
        self: LatentDecoder,
        z: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        label_ids: Tensor | None,
        attentions: list | None,
        pack: bool | None = None,
    ) -> Tensor:
        """The soft prompt and the sentence in one cache-free pass (the same computation as
        the prompt's cache followed by the tokens, which decoding uses): one call with static
        inputs, which torch.compile can capture, where a cache filled in place is not.  The
        batch is packed (:mod:`lmvae.packing`) when ``pack`` says so, by default when
        training with :attr:`pack` on."""
        prompt = self.soft_prompt(z)  # (B, slots, H)
        tokens = self.lm.get_input_embeddings()(input_ids)
        offset = self._label_offset(None, label_ids)
        if offset is not None:
            tokens = tokens + offset.to(tokens.dtype)
        batch, slots = prompt.shape[:2]
        first = torch.arange(slots, device=z.device).expand(batch, -1)
        compiled = self._compiled_base is not None and self.training and attentions is None
        base = self._compiled_base if compiled else self.base
        if pack is None:
            pack = self.pack and self.training and attentions is None
        if pack:
            return packed_forward(base, prompt.to(tokens.dtype), tokens, attention_mask)
        out = base(
            inputs_embeds=torch.cat([prompt.to(tokens.dtype), tokens], 1),
            attention_mask=prefix_attention_mask(attention_mask, slots),
            position_ids=torch.cat([first, position_ids(attention_mask) + slots], 1),
            use_cache=False,
            output_attentions=attentions is not None,
        )
        if attentions is not None:  # the sentence's queries, as the cached pass reports them
            attentions.extend(a[:, :, slots:] for a in out.attentions)
        return out.last_hidden_state[:, slots:]

    def pack_training_pass(
        self: LatentDecoder, z: Tensor, input_ids: Tensor, attention_mask: Tensor
    ) -> None:
        """Train on packed rows (:mod:`lmvae.packing`) from now on, after checking on a
        sample batch that this LM's attention keeps packed sentences apart: a family whose
        masking ignores the packed format would let sentences read each other."""
        self._check_prompt_pass("packing")
        with torch.no_grad():
            padded = self._prompt_pass(z, input_ids, attention_mask, None, None, pack=False)
            packed = self._prompt_pass(z, input_ids, attention_mask, None, None, pack=True)
        check_packing(type(self.lm).__name__, padded, packed, attention_mask)
        self.pack = True
