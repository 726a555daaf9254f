"""Parameter-efficient adaptation of the backbones: LoRA adapters (through PEFT) and full
fine-tuning of the top k transformer layers.

Both are applied in place to the loaded backbone, so it keeps its class and forward; the
adapter and unfrozen weights then have ``requires_grad=True`` and are saved with the heads
(:meth:`lmvae.LanguageVAE.trainable_state_dict`).  LoRA's B matrices start at zero, so a fresh
model computes exactly what the frozen one did.
"""

from __future__ import annotations

import warnings

from torch import nn

from lmvae.errors import ConfigError


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks: the first ModuleList as long as the config's layer count
    (``h`` in GPT-2, ``layers`` in Llama, ``encoder.layer`` in BERT, ``block`` in T5)."""
    n = int(model.config.num_hidden_layers)
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ConfigError(
        f"cannot find the {n} transformer layers of {type(model).__name__} to unfreeze"
    )


def unfreeze_top(model: nn.Module, k: int) -> None:
    """Let the top k transformer layers train (all their parameters)."""
    if k <= 0:
        return
    layers = transformer_layers(model)
    if k > len(layers):
        raise ConfigError(f"cannot unfreeze the top {k} layers: the model has {len(layers)}")
    for layer in layers[len(layers) - k :]:
        layer.requires_grad_(True)


def default_lora_targets(model_type: str) -> list[str] | str:
    """PEFT's default LoRA targets for an architecture, or every linear layer if it has none."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    return list(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type, [])) or (
        "all-linear"
    )


def add_lora(model: nn.Module, rank: int, alpha: float, targets: list[str] | None) -> None:
    """Wrap the target modules of model with LoRA adapters of the given rank, in place."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ConfigError("LoRA needs the peft package: pip install peft") from None
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=targets or default_lora_targets(model.config.model_type),
    )
    with warnings.catch_warnings():
        # GPT-2's Conv1D layers: PEFT switches fan_in_fan_out on itself and says so.
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        try:
            inject_adapter_in_model(config, model)
        except ValueError as e:
            raise ConfigError(f"cannot add LoRA to {type(model).__name__}: {e}") from None


def adapt(model: nn.Module, lora_rank: int, lora_alpha: float, lora_targets, top: int) -> None:
    """Apply a side's adaptation settings (LoRA, unfrozen top layers) to its backbone."""
    if lora_rank > 0:
        add_lora(model, lora_rank, lora_alpha, lora_targets)
    unfreeze_top(model, top)


def checkpoint_blocks(model: nn.Module) -> None:
    """Recompute each transformer block's activations in backward instead of keeping them
    (transformers' own gradient checkpointing, non-reentrant): a large decoder's activation
    memory falls to one block's for about a third more compute per step."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(f"{type(model).__name__} does not support gradient checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def follow_mode(model: nn.Module, mode: bool) -> None:
    """Put the checkpointed blocks (only them, not their dropout or attention modules) in
    ``mode``: transformers checkpoints a block only in training mode, while lmvae keeps
    backbones in eval mode (no dropout) whatever the heads do."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    for module in model.modules():
        if isinstance(module, GradientCheckpointingLayer) and module.gradient_checkpointing:
            module.training = mode


def check_encoder_adaptation(config, backbone_config) -> None:
    """LoRA or unfrozen encoder layers must lie at or below the pooled hidden state, or they
    could not change the features (config: an EncoderConfig)."""
    if not (config.lora_rank or config.unfreeze_top) or config.layer == "mix":
        return
    n = int(backbone_config.num_hidden_layers)
    index = int(config.layer) % (n + 1)
    lowest = 1 if config.lora_rank else n - config.unfreeze_top + 1
    if index < lowest:
        raise ConfigError(
            f"encoder adaptation cannot change the pooled hidden state {index} (0 = the "
            f"embeddings): its lowest trained layer is {lowest}; pool a deeper layer "
            "(encoder layer -1 or 'mix')"
        )
