"""The decoder families the lean forward covers, each from its model's own frozen weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmvae.fastpath.layout import TokenLayout, padded_attention
from lmvae.fastpath.linear import FrozenLinear, gelu_mlp


class LeanTrunk:
    """Base of a family: embeddings, the blocks, the final norm; weights held as FrozenLinear.

    Not an nn.Module: it holds (packed) copies of frozen weights, never state to save."""

    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, hidden: int):
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.hidden = hidden
        self.head: FrozenLinear | None = None  # the output layer, when a plain linear map
        self.window: int | None = None  # a sliding window covering slots + max length
        self.softcap: float | None = None  # attention scores soft-capped at this (Gemma 2)

    # A family defines embed(ids, positions), qkv(layer, x, positions) -> q / k / v (N, ...)
    # side by side, with positions applied,
    # finish(layer, x, attended) -> the block's output, and final_norm(x).
    num_layers: int
    eps: float  # of the family's norms

    def hidden_states(
        self,
        input_ids: Tensor,
        layout: TokenLayout,
        prefix: list[tuple[Tensor, Tensor]],
        offset: Tensor | None,
    ) -> Tensor:
        """Teacher-forced last hidden states (N, H) of the N real tokens of a padded batch."""
        x = self.embed(layout.to_flat(input_ids[..., None]).squeeze(1), layout.positions)
        if offset is not None:
            x = x + offset.to(x.dtype)
        for layer, (keys, values) in enumerate(prefix):
            x = self.block(layer, x, layout.positions, keys, values, layout)
        return self.final_norm(x[: layout.count])

    def attention(self, layer, qkv, keys, values, layout):
        """Flat q / k / v (N, heads * D each, side by side) of the new tokens and the prefix
        keys / values (B, kv_heads, S, D) -> flat attention output (N, heads * D)."""
        return padded_attention(
            qkv,
            keys,
            values,
            layout,
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
            self.scale(layer),
            self.softcap,
        )

    def block(self, layer, x, positions, keys, values, layout):
        qkv = self.qkv(layer, x, positions)
        return self.finish(layer, x, self.attention(layer, qkv, keys, values, layout))

    def scale(self, layer: int) -> float:
        return self.head_dim**-0.5

    def _norm(self, x: Tensor, weights: tuple[Tensor, Tensor]) -> Tensor:
        """LayerNorm (GPT-2, Phi); the RMSNorm families override it."""
        return F.layer_norm(x, (self.hidden,), weights[0], weights[1], self.eps)


def _layer_norm_weights(module: nn.Module, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    return module.weight.detach().to(dtype), module.bias.detach().to(dtype)


class GPT2Trunk(LeanTrunk):
    """GPT-2: learned positions, LayerNorm, fused QKV (Conv1D layout), GELU MLP."""

    ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": ""}

    def __init__(self, lm: nn.Module, dtype: torch.dtype):
        config = lm.config
        heads = config.n_head
        super().__init__(heads, heads, config.n_embd // heads, config.n_embd)
        base = lm.transformer
        self.wte = base.wte.weight.detach().to(dtype)
        self.wpe = base.wpe.weight.detach().to(dtype)
        self.algorithm = self.ACTIVATIONS[config.activation_function]
        self.by_layer_scale = config.scale_attn_by_inverse_layer_idx
        self.scaled = config.scale_attn_weights
        self.eps = config.layer_norm_epsilon

        def conv(module):  # Conv1D stores (in, out)
            return FrozenLinear(module.weight.t(), module.bias, dtype)

        self.blocks = [
            {
                "ln_1": _layer_norm_weights(b.ln_1, dtype),
                "qkv": conv(b.attn.c_attn),
                "proj": conv(b.attn.c_proj),
                "ln_2": _layer_norm_weights(b.ln_2, dtype),
                "up": conv(b.mlp.c_fc),
                "down": conv(b.mlp.c_proj),
            }
            for b in base.h
        ]
        self.ln_f = _layer_norm_weights(base.ln_f, dtype)
        self.num_layers = len(self.blocks)

    def scale(self, layer: int) -> float:
        scale = self.head_dim**-0.5 if self.scaled else 1.0
        return scale / (layer + 1) if self.by_layer_scale else scale

    def embed(self, ids: Tensor, positions: Tensor) -> Tensor:
        return self.wte[ids] + self.wpe[positions]

    def qkv(self, layer: int, x: Tensor, positions: Tensor) -> Tensor:
        w = self.blocks[layer]
        return w["qkv"](self._norm(x, w["ln_1"]))

    def finish(self, layer, x, attended):
        w = self.blocks[layer]
        x = x + w["proj"](attended)
        return x + gelu_mlp(self._norm(x, w["ln_2"]), w["up"], w["down"], self.algorithm)

    def final_norm(self, x: Tensor) -> Tensor:
        return self._norm(x, self.ln_f)


def _cat_linear(modules: list[nn.Linear], dtype: torch.dtype) -> FrozenLinear:
    """Several linear maps of the same input as one (their outputs side by side)."""
    weight = torch.cat([m.weight.detach() for m in modules])
    if all(m.bias is None for m in modules):
        return FrozenLinear(weight, None, dtype)
    biases = [
        m.bias.detach() if m.bias is not None else m.weight.new_zeros(m.out_features)
        for m in modules
    ]
    return FrozenLinear(weight, torch.cat(biases), dtype)


def _rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary positions on the first ``cos.shape[-1]`` numbers of each head (all of them, or a
    part: Phi's partial rotary), as transformers' ``apply_rotary_pos_emb``."""
    dims = cos.shape[-1]
    if dims == x.shape[-1]:
        return x * cos + _rotate_half(x) * sin
    part, rest = x[..., :dims], x[..., dims:]
    return torch.cat([part * cos + _rotate_half(part) * sin, rest], dim=-1)


class RotaryTrunk(LeanTrunk):
    """Families with rotary positions, from the model's own rotary module (so every RoPE
    scaling variant is its own) and separate or fused q / k / v maps."""

    def __init__(self, lm: nn.Module, dtype: torch.dtype):
        config = lm.config
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        super().__init__(heads, kv_heads, head_dim, config.hidden_size)
        self.base = lm.model
        self.rotary = self.base.rotary_emb
        self.embed_tokens = self.base.embed_tokens.weight.detach().to(dtype)
        self.dtype = dtype
        # cos, sin by position, per layer type (None: one rotary for every layer)
        self._rope: dict[str | None, tuple[Tensor, Tensor]] = {}

    def embed(self, ids: Tensor, positions: Tensor) -> Tensor:
        return self.embed_tokens[ids]

    def _cos_sin(self, positions: Tensor, layer_type: str | None = None) -> tuple[Tensor, Tensor]:
        rope = self._rope.get(layer_type)
        if rope is None or rope[0].shape[0] <= int(positions.max()):
            length = max(64, 2 * int(positions.max()) + 1)
            table = torch.arange(length, device=positions.device)[None]
            by_type = () if layer_type is None else (layer_type,)
            cos, sin = self.rotary(self.embed_tokens[:1], table, *by_type)
            rope = self._rope[layer_type] = (cos[0].to(self.dtype), sin[0].to(self.dtype))
        cos, sin = rope
        return cos[positions], sin[positions]

    def _positioned(
        self,
        qkv: Tensor,
        positions: Tensor,
        head_norms: tuple[Tensor, Tensor] | None = None,
        layer_type: str | None = None,
    ) -> Tensor:
        """Flat q / k / v (N, ...) side by side -> the same with q and k rotated (by the rotary
        of ``layer_type`` when the model has one per type: Gemma 3); with ``head_norms`` (query
        and key norm weights) each q / k head is first normalised by the family's ``_norm``
        (Qwen3, Gemma 3)."""
        n, heads, kv_heads, dim = qkv.shape[0], self.num_heads, self.num_kv_heads, self.head_dim
        q, k, v = qkv.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
        q, k = q.view(n, heads, dim), k.view(n, kv_heads, dim)
        if head_norms is not None:
            q, k = self._norm(q, head_norms[0]), self._norm(k, head_norms[1])
        cos, sin = self._cos_sin(positions, layer_type)
        cos, sin = cos[:, None], sin[:, None]
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        return torch.cat([q.reshape(n, -1), k.reshape(n, -1), v], dim=-1)


class LlamaTrunk(RotaryTrunk):
    """Llama, Mistral, Qwen2: RMSNorm, grouped-query attention, gated MLP (the model's own
    activation: SiLU for these)."""

    def __init__(self, lm: nn.Module, dtype: torch.dtype):
        super().__init__(lm, dtype)
        self.eps = lm.config.rms_norm_eps
        layers = self.base.layers
        self.act = self._activation(layers[0].mlp)
        self.blocks = [self._block(b, dtype) for b in layers]
        self.norm = self._norm_weight(self.base.norm.weight)
        self.num_layers = len(self.blocks)

    def _activation(self, mlp: nn.Module):
        return mlp.act_fn  # the model's own

    def _block(self, b: nn.Module, dtype: torch.dtype) -> dict:
        attn, mlp = b.self_attn, b.mlp
        return {
            "norm_1": self._norm_weight(b.input_layernorm.weight),
            "qkv": _cat_linear([attn.q_proj, attn.k_proj, attn.v_proj], dtype),
            "proj": FrozenLinear(attn.o_proj.weight, attn.o_proj.bias, dtype),
            "norm_2": self._norm_weight(b.post_attention_layernorm.weight),
            "gate_up": _cat_linear([mlp.gate_proj, mlp.up_proj], dtype),
            "down": FrozenLinear(mlp.down_proj.weight, mlp.down_proj.bias, dtype),
        }

    def _norm_weight(self, weight: Tensor) -> Tensor:
        return weight.detach().to(self.dtype)

    def _norm(self, x: Tensor, weight: Tensor) -> Tensor:
        # As transformers' LlamaRMSNorm: normalise in fp32, scale in the weights' dtype.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * x32.to(x.dtype)

    def _head_norms(self, attn: nn.Module) -> tuple[Tensor, Tensor]:
        """The query and key head norms' weights of an attention module that has them."""
        return self._norm_weight(attn.q_norm.weight), self._norm_weight(attn.k_norm.weight)

    def _layer_type(self, layer: int) -> str | None:
        return None  # one rotary for every layer

    def qkv(self, layer: int, x: Tensor, positions: Tensor) -> Tensor:
        w = self.blocks[layer]
        qkv = w["qkv"](self._norm(x, w["norm_1"]))
        return self._positioned(qkv, positions, w.get("head_norms"), self._layer_type(layer))

    def finish(self, layer, x, attended):
        w = self.blocks[layer]
        x = x + w["proj"](attended)
        gate, up = w["gate_up"](self._norm(x, w["norm_2"])).chunk(2, dim=-1)
        return x + w["down"](self.act(gate) * up)

    def final_norm(self, x: Tensor) -> Tensor:
        return self._norm(x, self.norm)


class Qwen3Trunk(LlamaTrunk):
    """Qwen3: Llama's layout with an RMSNorm over each query and key head (weights of their own)
    before rotary positions."""

    def _block(self, b: nn.Module, dtype: torch.dtype) -> dict:
        return {**super()._block(b, dtype), "head_norms": self._head_norms(b.self_attn)}


class Phi3Trunk(LlamaTrunk):
    """Phi-3 / Phi-4-mini: Llama's layout with q / k / v and gate / up each one fused map,
    and rotary positions on part of each head where the config says so."""

    def _activation(self, mlp: nn.Module):
        return mlp.activation_fn

    def _block(self, b: nn.Module, dtype: torch.dtype) -> dict:
        attn, mlp = b.self_attn, b.mlp
        return {
            "norm_1": self._norm_weight(b.input_layernorm.weight),
            "qkv": FrozenLinear(attn.qkv_proj.weight, attn.qkv_proj.bias, dtype),
            "proj": FrozenLinear(attn.o_proj.weight, attn.o_proj.bias, dtype),
            "norm_2": self._norm_weight(b.post_attention_layernorm.weight),
            "gate_up": FrozenLinear(mlp.gate_up_proj.weight, mlp.gate_up_proj.bias, dtype),
            "down": FrozenLinear(mlp.down_proj.weight, mlp.down_proj.bias, dtype),
        }


class GemmaTrunk(LlamaTrunk):
    """Gemma (the first): Llama's layout with embeddings scaled by sqrt(hidden), RMSNorm
    scaling by (1 + weight) in fp32, and a GELU-gated MLP."""

    def __init__(self, lm: nn.Module, dtype: torch.dtype):
        super().__init__(lm, dtype)
        self.embed_scale = self.base.embed_tokens.embed_scale.to(dtype)

    def _norm_weight(self, weight: Tensor) -> Tensor:
        return 1.0 + weight.detach().to(self.dtype).float()

    def _norm(self, x: Tensor, scale: Tensor) -> Tensor:
        # As transformers' GemmaRMSNorm: normalise and scale in fp32, then cast.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * scale).to(x.dtype)

    def embed(self, ids: Tensor, positions: Tensor) -> Tensor:
        return self.embed_tokens[ids] * self.embed_scale


class Gemma2Trunk(GemmaTrunk):
    """Gemma 2: Gemma with a norm after attention and around the MLP, attention scores scaled by
    ``query_pre_attn_scalar`` and soft-capped (its local and global windows: see
    :func:`lean_trunk`)."""

    def __init__(self, lm: nn.Module, dtype: torch.dtype):
        super().__init__(lm, dtype)
        config = lm.config
        self.softcap = config.attn_logit_softcapping or None
        self._scale = config.query_pre_attn_scalar**-0.5

    def _block(self, b: nn.Module, dtype: torch.dtype) -> dict:
        return {
            **super()._block(b, dtype),
            "post_attn": self._norm_weight(b.post_attention_layernorm.weight),
            "norm_2": self._norm_weight(b.pre_feedforward_layernorm.weight),
            "post_mlp": self._norm_weight(b.post_feedforward_layernorm.weight),
        }

    def scale(self, layer: int) -> float:
        return self._scale

    def finish(self, layer, x, attended):
        w = self.blocks[layer]
        x = x + self._norm(w["proj"](attended), w["post_attn"])
        gate, up = w["gate_up"](self._norm(x, w["norm_2"])).chunk(2, dim=-1)
        return x + self._norm(w["down"](self.act(gate) * up), w["post_mlp"])


class Gemma3Trunk(Gemma2Trunk):
    """Gemma 3 (text): Gemma 2's layout with an RMSNorm over each query and key head, and the
    rotary positions of each layer's type (local or global attention)."""

    def __init__(self, lm: nn.Module, dtype: torch.dtype):
        self.layer_types = list(lm.config.layer_types)
        super().__init__(lm, dtype)

    def _block(self, b: nn.Module, dtype: torch.dtype) -> dict:
        return {**super()._block(b, dtype), "head_norms": self._head_norms(b.self_attn)}

    def _layer_type(self, layer: int) -> str | None:
        return self.layer_types[layer]


class PhiTrunk(RotaryTrunk):
    """Phi (1, 1.5, 2): one LayerNorm feeding attention and MLP side by side, q / k / v with
    biases, partial rotary positions, a GELU MLP, an output layer with a bias."""

    def __init__(self, lm: nn.Module, dtype: torch.dtype):
        super().__init__(lm, dtype)
        config = lm.config
        self.eps = config.layer_norm_eps
        self.algorithm = GPT2Trunk.ACTIVATIONS[config.hidden_act]
        self.blocks = [
            {
                "norm": _layer_norm_weights(b.input_layernorm, dtype),
                "qkv": _cat_linear(
                    [b.self_attn.q_proj, b.self_attn.k_proj, b.self_attn.v_proj], dtype
                ),
                "proj": FrozenLinear(b.self_attn.dense.weight, b.self_attn.dense.bias, dtype),
                "up": FrozenLinear(b.mlp.fc1.weight, b.mlp.fc1.bias, dtype),
                "down": FrozenLinear(b.mlp.fc2.weight, b.mlp.fc2.bias, dtype),
            }
            for b in self.base.layers
        ]
        self.final = _layer_norm_weights(self.base.final_layernorm, dtype)
        self.num_layers = len(self.blocks)

    def qkv(self, layer: int, x: Tensor, positions: Tensor) -> Tensor:
        w = self.blocks[layer]
        return self._positioned(w["qkv"](self._norm(x, w["norm"])), positions)

    def finish(self, layer, x, attended):
        w = self.blocks[layer]
        # The MLP reads the same normed input as attention (recomputed: one layer norm).
        mlp = gelu_mlp(self._norm(x, w["norm"]), w["up"], w["down"], self.algorithm)
        return w["proj"](attended) + mlp + x

    def final_norm(self, x: Tensor) -> Tensor:
        return self._norm(x, self.final)


_LLAMA_LIKE = ("llama", "mistral", "qwen2")


def _window(config) -> int | None:
    """The attention window of a config, None when attention is full."""
    window = getattr(config, "sliding_window", None)
    if config.model_type in ("qwen2", "qwen3") and not getattr(config, "use_sliding_window", False):
        return None
    return window


def lean_trunk(lm: nn.Module, dtype: torch.dtype, positions: int) -> LeanTrunk | None:
    """The lean forward of ``lm`` in ``dtype``, or None when its family is not covered.

    ``positions``: the most positions (injected slots included) a query will see.  The lean
    forward attends to all of them, so a sliding window shorter than that is not covered; one
    at least as long never drops anything (decoding past it raises, see ``SlotCache``)."""
    config = lm.config
    model_type = getattr(config, "model_type", None)
    window = _window(config)
    if window is not None and window < positions:
        return None
    trunk: LeanTrunk | None = None
    if model_type == "gpt2":
        if config.activation_function in GPT2Trunk.ACTIVATIONS and not getattr(
            config, "reorder_and_upcast_attn", False
        ):
            trunk = GPT2Trunk(lm, dtype)
    elif model_type in _LLAMA_LIKE:
        trunk = LlamaTrunk(lm, dtype)
    elif model_type == "qwen3":
        trunk = Qwen3Trunk(lm, dtype)
    elif model_type == "phi3":
        trunk = Phi3Trunk(lm, dtype)
    elif model_type == "gemma":
        trunk = GemmaTrunk(lm, dtype)
    elif model_type == "gemma2":
        trunk = Gemma2Trunk(lm, dtype)
    elif model_type == "gemma3_text" and not getattr(config, "use_bidirectional_attention", False):
        trunk = Gemma3Trunk(lm, dtype)
    elif (
        model_type == "phi"
        and config.hidden_act in GPT2Trunk.ACTIVATIONS
        and not config.qk_layernorm
    ):
        trunk = PhiTrunk(lm, dtype)
    if trunk is None:
        return None
    trunk.window = window
    head = lm.get_output_embeddings()
    if type(head) is nn.Linear:
        trunk.head = FrozenLinear(head.weight, head.bias, dtype)
    return trunk
