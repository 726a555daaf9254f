"""Frozen encoder LM -> pooled sentence features -> Gaussian posterior (mu, logvar).

The frozen part (:meth:`SentenceEncoder.features`) and the trainable part
(:meth:`SentenceEncoder.posterior`) are separate so that a trainer can compute the frozen
features once per sentence and reuse them every epoch (unless LoRA or unfrozen layers make the
backbone train; then the features are recomputed with gradients).

Annotation-conditioned encoders (``num_labels > 0``) also pool the token states of each label
separately (:func:`pool_by_label`), so the head sees which words fill which role, q(z | x, c).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel

from lmvae.config import EncoderConfig
from lmvae.errors import ConfigError


def num_hidden_states(config) -> int:
    """Embedding output plus one state per layer, as ``output_hidden_states`` returns them."""
    return int(config.num_hidden_layers) + 1


def pool(states: Tensor, mask: Tensor, how: str) -> Tensor:
    """Pool token states (B, T, H) into (B, H) over the real tokens given by mask (B, T).

    Works with either padding side: CLS is the first real token, "last" the last real one.
    """
    mask = mask.to(states.dtype)
    if how == "mean":
        return (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
    positions = torch.arange(mask.shape[1], device=mask.device)
    if how == "cls":
        index = torch.where(mask > 0, -positions, -mask.shape[1]).argmax(1)  # first real token
    elif how == "last":
        index = torch.where(mask > 0, positions, -1).argmax(1)  # last real token
    else:
        raise ConfigError(f"unknown pooling {how!r}")
    return states[torch.arange(states.shape[0], device=states.device), index]


def pool_by_label(states: Tensor, mask: Tensor, token_labels: Tensor, groups: int) -> Tensor:
    """Mean token state per label: states (B, T, H), mask and token_labels (B, T) -> (B, G, H).

    Group g holds label id g + 1 (id 0, padding and special tokens, is left out); a label absent
    from a sentence gives a zero vector.
    """
    onehot = F.one_hot(token_labels.clamp_min(0), groups + 1)[..., 1:].to(states.dtype)
    onehot = onehot * mask[..., None].to(states.dtype)  # (B, T, G)
    sums = torch.einsum("btg,bth->bgh", onehot, states)
    return sums / onehot.sum(1)[..., None].clamp_min(1.0)


def label_block_scale(config: EncoderConfig, groups: int) -> float:
    """The factor on each layer-normalised label-group block before the posterior head.

    Adam moves every weight by about the learning rate per step whatever its input, so G
    blocks of unit-scale features would move the posterior G times as fast as the sentence
    vector beside them: with POS labels (G = 18) the posterior ran away on the training
    sentences (training KL up to 5x the held-out KL) and reconstructed 12 nats worse than
    without labels (docs/benchmarks.md, issue 18).  Scaled by 1 / G the blocks together move
    it as fast as the sentence vector alone.
    """
    if config.label_scale is not None:
        return float(config.label_scale)
    return 1.0 / groups if groups else 1.0


class _Captured(Exception):
    """Raised by a hook to leave the backbone once the deepest pooled state is captured."""


def layer_stack(backbone: nn.Module, num_layers: int) -> nn.ModuleList | None:
    """The backbone's list of transformer layers: the outermost ModuleList of ``num_layers``."""
    for module in backbone.modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return module
    return None


class SentenceEncoder(nn.Module):
    """A frozen encoder LM with a trainable posterior head."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        config: EncoderConfig,
        latent_size: int,
        num_labels: int = 0,
    ):
        super().__init__()
        self.backbone = backbone
        self.config = config
        # Label groups pooled separately: every label plus "unknown" (id 1).
        self.label_groups = num_labels + 1 if num_labels else 0
        n_states = num_hidden_states(backbone.config)
        if config.layer == "mix":
            self.layers: list[int] = list(range(n_states))
            # Zero logits: the mix starts as a plain average of all layers.
            self.layer_logits = nn.Parameter(torch.zeros(n_states))
        else:
            layer = int(config.layer)
            if not -n_states <= layer < n_states:
                raise ConfigError(
                    f"encoder layer {layer} out of range: the encoder has {n_states} hidden states "
                    f"(embeddings + {n_states - 1} layers), so use -{n_states}..{n_states - 1}"
                )
            self.layers = [layer % n_states]
            self.layer_logits = None
        hidden = backbone.config.hidden_size
        # Pooled states of a frozen LM differ little between sentences next to their shared
        # offset; a LayerNorm first made the posterior learn markedly faster (measured in
        # docs/benchmarks.md).  With `normalize` the L2 norm takes its place: a LayerNorm after
        # it would undo the choice, since it ignores the scale of its input.
        self.norm = nn.Identity() if config.normalize else nn.LayerNorm(hidden)
        self.label_norm = nn.LayerNorm(hidden) if self.label_groups else None
        self.head = nn.Linear(hidden, 2 * latent_size)
        if self.label_groups:
            # The label groups' columns start at zero, so a conditioned encoder starts as the
            # plain one (same weights for the same seed) and learns what the labels add.
            wide = F.pad(self.head.weight.detach(), (0, hidden * self.label_groups))
            self.head.weight = nn.Parameter(wide)
            self.head.in_features = wide.shape[1]
        self.label_scale = label_block_scale(config, self.label_groups)
        self.latent_size = latent_size
        self.reset_logvar()
        # Hidden state i < N is the input of layer i, so pooling shallow states needs only the
        # layers below them: the default (embeddings) needs none.  Whether the stack found is
        # the one the states come from is checked against a full pass on the first batch.
        deepest = max(self.layers)
        self._stack = layer_stack(backbone, n_states - 1) if deepest < n_states - 1 else None
        self._early_exit: bool | None = None  # None: not checked yet

    def reset_logvar(self) -> None:
        """Start the posterior's log-variance at ``config.init_logvar`` (the head's bias)."""
        with torch.no_grad():
            self.head.bias[self.latent_size :].fill_(self.config.init_logvar)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one sentence's features: (number of pooled layers, hidden size), with a
        label-group axis before the hidden size when annotation-conditioned."""
        hidden = self.backbone.config.hidden_size
        if self.label_groups:
            return len(self.layers), 1 + self.label_groups, hidden
        return len(self.layers), hidden

    @property
    def backbone_trains(self) -> bool:
        """True when LoRA adapters or unfrozen layers make the backbone's output trainable."""
        return any(p.requires_grad for p in self.backbone.parameters())

    def features(
        self, input_ids: Tensor, attention_mask: Tensor, token_labels: Tensor | None = None
    ) -> Tensor:
        """Pooled states of the selected layers: (B, S, H), S = 1 or all layers for "mix".

        Annotation-conditioned: (B, S, 1 + G, H), the pooled state then the mean state of each
        of the G label groups, from token_labels (B, T) aligned to input_ids.  Without gradient
        unless the backbone trains.
        """
        if self.label_groups and token_labels is None:
            raise ConfigError(
                "this encoder is conditioned on annotations: give the labels of each sentence"
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.backbone_trains):
            states = self._states(input_ids, attention_mask)
            pooled = []
            for i in self.layers:
                row = pool(states[i], attention_mask, self.config.pooling)
                if self.label_groups:
                    by_label = pool_by_label(
                        states[i], attention_mask, token_labels, self.label_groups
                    )
                    row = torch.cat([row[:, None], by_label], dim=1)
                pooled.append(row)
            return torch.stack(pooled, dim=1).float()

    def _states(self, input_ids: Tensor, attention_mask: Tensor) -> Sequence[Tensor] | dict:
        """The hidden states to pool, indexable by layer: all of them, or only the selected ones
        from a pass that stops below the deepest selected layer."""
        if self._stack is None or self._early_exit is False:
            return self._all_states(input_ids, attention_mask)
        states = self._shallow_states(input_ids, attention_mask)
        if self._early_exit is None:
            full = self._all_states(input_ids, attention_mask)
            self._early_exit = all(
                states.get(i) is not None
                and states[i].shape == full[i].shape
                and torch.allclose(states[i], full[i])
                for i in self.layers
            )
            return full
        return states

    def _all_states(self, input_ids: Tensor, attention_mask: Tensor) -> Sequence[Tensor]:
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        )
        return out.hidden_states

    def _shallow_states(self, input_ids: Tensor, attention_mask: Tensor) -> dict[int, Tensor]:
        """Inputs of the selected layers, captured by pre-hooks; the deepest one stops the pass."""
        states: dict[int, Tensor] = {}
        deepest = max(self.layers)

        def capture(index: int):
            def hook(module, args, kwargs):
                states[index] = args[0] if args else kwargs.get("hidden_states")
                if index == deepest:
                    raise _Captured

            return hook

        handles = [
            self._stack[i].register_forward_pre_hook(capture(i), with_kwargs=True)
            for i in set(self.layers)
        ]
        try:
            self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        except _Captured:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return states

    def posterior(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S, H) features (or (B, S, 1 + G, H), conditioned) -> mu, logvar, each
        (B, latent_size)."""
        if self.layer_logits is not None:
            weights = torch.softmax(self.layer_logits, 0)
            pooled = torch.einsum("s,bs...->b...", weights, features.to(weights.dtype))
        else:
            pooled = features[:, 0]
        pooled = pooled.to(self.head.weight.dtype)
        by_label = None
        if self.label_groups:
            pooled, by_label = pooled[:, 0], pooled[:, 1:]
        if self.config.normalize:
            pooled = F.normalize(pooled, dim=-1)
        inputs = self.norm(pooled)
        if by_label is not None:
            by_label = self.label_norm(by_label) * self.label_scale
            inputs = torch.cat([inputs, by_label.flatten(1)], dim=-1)
        mu, logvar = self.head(inputs).chunk(2, dim=-1)
        return mu, logvar
