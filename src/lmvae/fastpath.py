"""A lean forward of a frozen decoder on CPU: token-flat, pre-packed weights, few ops.

The transformers modules run a general forward: masks and cache objects built per call,
attention dispatch, padding positions carried through every layer.  On CPU, for the small
models this library trains against, that overhead is most of a step.  This module runs the same
arithmetic from the same (frozen) weights for the families it knows -- GPT-2, the Llama /
Mistral / Qwen2 layout, Gemma and Phi -- with

* padding never entering the position-wise layers: a batch's real tokens are one (N, H)
  matrix, and only attention sees them per sentence;
* bf16 weights packed once for oneDNN (``torch.ops.mkldnn``), in both directions, so the input
  gradient of a frozen matmul is one packed matmul too (no weight gradients are ever formed);
* a growing per-layer K/V buffer for decoding instead of a cache object.

:func:`lean_trunk` says whether a decoder qualifies; anything else (another architecture,
weights that train, a GPU, per-position injection) runs through transformers.  Each family is
tested against the transformers forward, values and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# -- frozen linear maps --------------------------------------------------------------------------


@cache
def packing_available() -> bool:
    """Whether this torch build packs bf16 weights for oneDNN (checked once)."""
    try:
        w = torch.zeros(8, 8, dtype=torch.bfloat16)
        packed = torch.ops.mkldnn._reorder_linear_weight(w, 8)
        torch.ops.mkldnn._linear_pointwise(
            torch.zeros(2, 8, dtype=torch.bfloat16), packed, None, "none", [], ""
        )
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


#: Row counts of packed matmuls are padded to a multiple of this (at least): oneDNN compiles
#: and keeps a kernel per distinct shape, and the token count of a batch changes every step.
ROW_MULTIPLE = 16


def padded_rows(rows: int) -> int:
    """The row count a packed matmul of ``rows`` rows runs with: 32 up to 32 rows, then a
    multiple of :data:`ROW_MULTIPLE` up to 128, beyond that of an eighth of the next power
    of two.

    oneDNN compiles a kernel (~1-2 ms) and keeps it with its buffers (~0.8 MB) for every row
    count it meets, for the life of the process; a training run's batches, a few hundred
    tokens each, would otherwise leave some twenty per weight shape.  Up to 32 rows a matmul
    costs the same whatever the count (its call overhead), so decoding batches of any size up
    to 32 share one kernel.  Past 128 rows, padding adds ~7 % rows on average, < 25 % at most.
    """
    if rows <= 2 * ROW_MULTIPLE:
        return 2 * ROW_MULTIPLE
    step = max(ROW_MULTIPLE, (1 << (rows - 1).bit_length()) // 8)
    return -(-rows // step) * step


class FrozenLinear:
    """y = x W^T + b with a fixed W, and the input gradient g W, both as fast as this CPU allows.

    In bf16 with oneDNN available, W and W^T are packed once; otherwise plain matmuls.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, dtype: torch.dtype):
        # (out, in); a transposed view (GPT-2's Conv1D) stays a view: matmuls take its strides.
        self.weight = weight.detach().to(dtype)
        self.bias = bias.detach().to(dtype) if bias is not None else None
        self.packed = self.packed_t = None
        if dtype == torch.bfloat16 and self.weight.device.type == "cpu" and packing_available():
            reorder = torch.ops.mkldnn._reorder_linear_weight
            self.packed = reorder(self.weight.contiguous(), 64)
            # W^T is packed on the first backward (decoding never needs it); the plain weight
            # stays for that.

    def forward(self, x: Tensor, activation: str = "none", algorithm: str = "") -> Tensor:
        """x (N, in) -> (N, out), no autograd; ``activation`` "gelu" fuses it on packed weights."""
        if self.packed is None:
            y = F.linear(x, self.weight, self.bias)
            return _activate(y, activation, algorithm)
        return _packed_mm(x, self.packed, self.bias, activation, algorithm)

    def input_grad(self, grad: Tensor) -> Tensor:
        """dL/dx from dL/dy (N, out) -> (N, in)."""
        if self.packed is None:
            return grad @ self.weight
        if self.packed_t is None:
            self.packed_t = torch.ops.mkldnn._reorder_linear_weight(
                self.weight.t().contiguous(), 64
            )
        return _packed_mm(grad, self.packed_t, None, "none", "")

    def __call__(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _FrozenLinearFn.apply(x, self)
        return self.forward(x)


def _approximate(algorithm: str) -> str:
    """oneDNN's GELU algorithm name ("tanh" or "") as torch's ``approximate`` argument."""
    return "tanh" if algorithm == "tanh" else "none"


def _activate(y: Tensor, activation: str, algorithm: str) -> Tensor:
    if activation == "gelu":
        return F.gelu(y, approximate=_approximate(algorithm))
    return y


def _packed_mm(x: Tensor, packed: Tensor, bias: Tensor | None, act: str, algorithm: str) -> Tensor:
    rows = x.shape[0]
    extra = padded_rows(rows) - rows
    if extra:
        x = F.pad(x, (0, 0, 0, extra))
    y = torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, bias, act, [], algorithm)
    return y[:rows] if extra else y


class _FrozenLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, linear):
        ctx.linear = linear
        return linear.forward(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.linear.input_grad(grad.contiguous()), None


class _FrozenMLPFn(torch.autograd.Function):
    """act(x W1^T + b1) W2^T + b2 with frozen weights.  The activation is fused into the first
    packed matmul; backward recomputes its input (one matmul) rather than keeping it."""

    @staticmethod
    def forward(ctx, x, up, down, algorithm):
        ctx.save_for_backward(x)
        ctx.up, ctx.down, ctx.algorithm = up, down, algorithm
        return down.forward(up.forward(x, "gelu", algorithm))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        pre = ctx.up.forward(x)
        grad_act = ctx.down.input_grad(grad.contiguous())
        grad_pre = torch.ops.aten.gelu_backward(
            grad_act, pre, approximate=_approximate(ctx.algorithm)
        )
        return ctx.up.input_grad(grad_pre), None, None, None


def gelu_mlp(x: Tensor, up: FrozenLinear, down: FrozenLinear, algorithm: str) -> Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _FrozenMLPFn.apply(x, up, down, algorithm)
    return down.forward(up.forward(x, "gelu", algorithm))


# -- where each token sits -----------------------------------------------------------------------


@dataclass
class TokenLayout:
    """Real tokens of a right-padded (B, T) batch as one flat list, and the attention mask.

    ``index`` holds the flat positions b * T + t of the ``count`` real tokens, then repeats the
    first one up to :func:`padded_rows` rows, so the packed matmuls never copy
    their input to pad it: position-wise layers keep rows apart, and attention and the output
    read the first ``count`` rows only.  ``mask`` (B, 1, T, S + T) is additive: query t sees the
    S injected slots and the real tokens 0..t of its own sentence.
    """

    batch: int
    length: int
    count: int
    index: Tensor
    rows: Tensor  # (rows,) sentence of each flat row
    positions: Tensor  # (rows,) position ids counted from 0 per sentence
    mask: Tensor

    @classmethod
    def from_mask(cls, attention_mask: Tensor, num_slots: int, dtype: torch.dtype) -> TokenLayout:
        batch, length = attention_mask.shape
        real = attention_mask.bool()
        index = real.reshape(-1).nonzero().squeeze(1)
        count = index.shape[0]
        index = torch.cat([index, index[:1].expand(padded_rows(count) - count)])
        positions = (real.long().cumsum(1) - 1).reshape(-1)[index]
        causal = torch.ones(length, length, dtype=torch.bool, device=real.device).tril()
        seen = causal[None] & real[:, None, :]  # (B, T, T)
        slots = torch.ones(batch, length, num_slots, dtype=torch.bool, device=real.device)
        allowed = torch.cat([slots, seen], dim=-1)[:, None]
        mask = torch.zeros(allowed.shape, dtype=dtype, device=real.device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return cls(batch, length, count, index, index // length, positions, mask)

    def to_padded(self, flat: Tensor) -> Tensor:
        """(rows, ...) -> (B, T, ...), zeros at padding."""
        out = flat.new_zeros(self.batch * self.length, *flat.shape[1:])
        real = flat[: self.count]
        out = out.index_copy(0, self.index[: self.count], real)
        return out.view(self.batch, self.length, *flat.shape[1:])

    def to_flat(self, padded: Tensor) -> Tensor:
        """(B, T, ...) -> (rows, ...)."""
        return padded.reshape(self.batch * self.length, *padded.shape[2:]).index_select(
            0, self.index
        )


def _attend(q: Tensor, keys: Tensor, values: Tensor, scale: float, mask: Tensor | None) -> Tensor:
    """q (B, Hq, T, D) over keys / values (B, Hkv, K, D), grouped-query aware -> (B, Hq, T, D)."""
    batch, heads, length, dim = q.shape
    kv_heads = keys.shape[1]
    group = heads // kv_heads
    q = q.reshape(batch, kv_heads, group * length, dim)
    scores = torch.matmul(q, keys.transpose(-1, -2)) * scale
    if mask is not None:
        scores = (scores.view(batch, kv_heads, group, length, -1) + mask[:, :, None]).view(
            batch, kv_heads, group * length, -1
        )
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, values).view(batch, heads, length, dim)


# -- the families --------------------------------------------------------------------------------


class LeanTrunk:
    """Base of a family: embeddings, the blocks, the final norm; weights held as FrozenLinear.

    Not an nn.Module: it holds (packed) copies of frozen weights, never state to save."""

    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, hidden: int):
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.hidden = hidden
        self.head: FrozenLinear | None = None  # the output layer, when a plain linear map
        self.window: int | None = None  # a sliding attention window, never reached in practice

    # A family defines embed(ids, positions), qkv(layer, x, positions) -> q / k / v (N, ...)
    # side by side, with positions applied,
    # finish(layer, x, attended) -> the block's output, and final_norm(x).
    num_layers: int

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
        heads, kv_heads, dim = self.num_heads, self.num_kv_heads, self.head_dim
        # Attention runs in fp32 whatever the weights' dtype: on CPU a bf16 softmax (and its
        # backward) is ~4x slower than fp32 at these sizes, and the injected slots come fp32.
        padded = layout.to_padded(qkv.float())  # (B, T, ...): one copy for the three
        q, k, v = padded.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
        batch, length = padded.shape[:2]
        q = q.view(batch, length, heads, dim).transpose(1, 2)
        k = k.view(batch, length, kv_heads, dim).transpose(1, 2)
        v = v.view(batch, length, kv_heads, dim).transpose(1, 2)
        keys = torch.cat([keys.float(), k], dim=2)
        values = torch.cat([values.float(), v], dim=2)
        out = _attend(q, keys, values, self.scale(layer), layout.mask)
        flat = layout.to_flat(out.transpose(1, 2)).reshape(-1, self.num_heads * self.head_dim)
        return flat.to(qkv.dtype)

    def block(self, layer, x, positions, keys, values, layout):
        qkv = self.qkv(layer, x, positions)
        return self.finish(layer, x, self.attention(layer, qkv, keys, values, layout))

    def scale(self, layer: int) -> float:
        return self.head_dim**-0.5


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

        def norm(module):
            return (module.weight.detach().to(dtype), module.bias.detach().to(dtype))

        self.blocks = [
            {
                "ln_1": norm(b.ln_1),
                "qkv": conv(b.attn.c_attn),
                "proj": conv(b.attn.c_proj),
                "ln_2": norm(b.ln_2),
                "up": conv(b.mlp.c_fc),
                "down": conv(b.mlp.c_proj),
            }
            for b in base.h
        ]
        self.ln_f = norm(base.ln_f)
        self.num_layers = len(self.blocks)

    def scale(self, layer: int) -> float:
        scale = self.head_dim**-0.5 if self.scaled else 1.0
        return scale / (layer + 1) if self.by_layer_scale else scale

    def _norm(self, x, weights):
        return F.layer_norm(x, (self.hidden,), weights[0], weights[1], self.eps)

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
        self._rope: tuple[Tensor, Tensor] | None = None  # cos, sin by position

    def embed(self, ids: Tensor, positions: Tensor) -> Tensor:
        return self.embed_tokens[ids]

    def _cos_sin(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        if self._rope is None or self._rope[0].shape[0] <= int(positions.max()):
            length = max(64, 2 * int(positions.max()) + 1)
            table = torch.arange(length, device=positions.device)[None]
            cos, sin = self.rotary(self.embed_tokens[:1], table)
            self._rope = (cos[0].to(self.dtype), sin[0].to(self.dtype))
        cos, sin = self._rope
        return cos[positions], sin[positions]

    def _positioned(self, qkv: Tensor, positions: Tensor) -> Tensor:
        """Flat q / k / v (N, ...) side by side -> the same with q and k rotated."""
        n, heads, kv_heads, dim = qkv.shape[0], self.num_heads, self.num_kv_heads, self.head_dim
        q, k, v = qkv.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
        cos, sin = self._cos_sin(positions)
        cos, sin = cos[:, None], sin[:, None]
        q = _rotate(q.view(n, heads, dim), cos, sin)
        k = _rotate(k.view(n, kv_heads, dim), cos, sin)
        return torch.cat([q.view(n, -1), k.view(n, -1), v], dim=-1)


class LlamaTrunk(RotaryTrunk):
    """Llama, Mistral, Qwen2: RMSNorm, grouped-query attention, gated MLP (the model's own
    activation: SiLU for these)."""

    def __init__(self, lm: nn.Module, dtype: torch.dtype):
        super().__init__(lm, dtype)
        self.eps = lm.config.rms_norm_eps
        layers = self.base.layers
        self.act = layers[0].mlp.act_fn
        self.blocks = [
            {
                "norm_1": self._norm_weight(b.input_layernorm.weight),
                "qkv": _cat_linear(
                    [b.self_attn.q_proj, b.self_attn.k_proj, b.self_attn.v_proj], dtype
                ),
                "proj": FrozenLinear(b.self_attn.o_proj.weight, b.self_attn.o_proj.bias, dtype),
                "norm_2": self._norm_weight(b.post_attention_layernorm.weight),
                "gate_up": _cat_linear([b.mlp.gate_proj, b.mlp.up_proj], dtype),
                "down": FrozenLinear(b.mlp.down_proj.weight, b.mlp.down_proj.bias, dtype),
            }
            for b in layers
        ]
        self.norm = self._norm_weight(self.base.norm.weight)
        self.num_layers = len(self.blocks)

    def _norm_weight(self, weight: Tensor) -> Tensor:
        return weight.detach().to(self.dtype)

    def _norm(self, x: Tensor, weight: Tensor) -> Tensor:
        # As transformers' LlamaRMSNorm: normalise in fp32, scale in the weights' dtype.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * x32.to(x.dtype)

    def qkv(self, layer: int, x: Tensor, positions: Tensor) -> Tensor:
        w = self.blocks[layer]
        return self._positioned(w["qkv"](self._norm(x, w["norm_1"])), positions)

    def finish(self, layer, x, attended):
        w = self.blocks[layer]
        x = x + w["proj"](attended)
        gate, up = w["gate_up"](self._norm(x, w["norm_2"])).chunk(2, dim=-1)
        return x + w["down"](self.act(gate) * up)

    def final_norm(self, x: Tensor) -> Tensor:
        return self._norm(x, self.norm)


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


class PhiTrunk(RotaryTrunk):
    """Phi (1, 1.5, 2): one LayerNorm feeding attention and MLP side by side, q / k / v with
    biases, partial rotary positions, a GELU MLP, an output layer with a bias."""

    def __init__(self, lm: nn.Module, dtype: torch.dtype):
        super().__init__(lm, dtype)
        config = lm.config
        self.eps = config.layer_norm_eps
        self.algorithm = GPT2Trunk.ACTIVATIONS[config.hidden_act]

        def norm(module):
            return (module.weight.detach().to(dtype), module.bias.detach().to(dtype))

        self.blocks = [
            {
                "norm": norm(b.input_layernorm),
                "qkv": _cat_linear(
                    [b.self_attn.q_proj, b.self_attn.k_proj, b.self_attn.v_proj], dtype
                ),
                "proj": FrozenLinear(b.self_attn.dense.weight, b.self_attn.dense.bias, dtype),
                "up": FrozenLinear(b.mlp.fc1.weight, b.mlp.fc1.bias, dtype),
                "down": FrozenLinear(b.mlp.fc2.weight, b.mlp.fc2.bias, dtype),
            }
            for b in self.base.layers
        ]
        self.final = norm(self.base.final_layernorm)
        self.num_layers = len(self.blocks)

    def _norm(self, x: Tensor, weights: tuple[Tensor, Tensor]) -> Tensor:
        return F.layer_norm(x, (self.hidden,), weights[0], weights[1], self.eps)

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
#: The lean forward attends to everything; a sliding window at least this long (slots included)
#: never drops anything a sentence VAE decodes.
MIN_WINDOW = 1024


def _window(config) -> int | None:
    """The attention window of a Llama-like config, None when attention is full."""
    window = getattr(config, "sliding_window", None)
    if config.model_type == "qwen2" and not getattr(config, "use_sliding_window", False):
        return None
    return window


def lean_trunk(lm: nn.Module, dtype: torch.dtype) -> LeanTrunk | None:
    """The lean forward of ``lm`` in ``dtype``, or None when its family is not covered."""
    config = lm.config
    model_type = getattr(config, "model_type", None)
    trunk: LeanTrunk | None = None
    if model_type == "gpt2":
        if config.activation_function in GPT2Trunk.ACTIVATIONS and not getattr(
            config, "reorder_and_upcast_attn", False
        ):
            trunk = GPT2Trunk(lm, dtype)
    elif model_type in _LLAMA_LIKE:
        window = _window(config)
        if window is None or window >= MIN_WINDOW:
            trunk = LlamaTrunk(lm, dtype)
            trunk.window = window
    elif model_type == "gemma":
        trunk = GemmaTrunk(lm, dtype)
    elif (
        model_type == "phi"
        and config.hidden_act in GPT2Trunk.ACTIVATIONS
        and not config.qk_layernorm
    ):
        trunk = PhiTrunk(lm, dtype)
    head = lm.get_output_embeddings()
    if trunk is not None and type(head) is nn.Linear:
        trunk.head = FrozenLinear(head.weight, head.bias, dtype)
    return trunk


# -- decoding ----------------------------------------------------------------------------------


class SlotCache:
    """Per-layer K/V buffers (layers, 2, B, kv_heads, capacity, D) holding the injected slots,
    then each new token; fp32, because attention over one query is several times faster in
    fp32 than in bf16 on CPU (and the buffers are small)."""

    def __init__(self, trunk: LeanTrunk, prefix: list[tuple[Tensor, Tensor]], capacity: int):
        self.trunk = trunk
        keys = prefix[0][0]
        batch, heads, slots, dim = keys.shape
        self.length = slots
        shape = (len(prefix), 2, batch, heads, max(capacity, slots + 1), dim)
        self.buffer = keys.new_empty(shape, dtype=torch.float32)
        for layer, (k, v) in enumerate(prefix):
            self.buffer[layer, 0, :, :, :slots] = k
            self.buffer[layer, 1, :, :, :slots] = v

    def append(self, layer: int, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Write the new token's keys and values (B, 2 * kv_heads * D, side by side) at the
        end; return the filled views (B, kv_heads, n, D)."""
        n = self.length + 1
        window = self.trunk.window
        if window is not None and n > window:
            raise ValueError(
                f"the lean forward attends to at most the decoder's window of {window} positions "
                "(slots included); set decoder.fast_path = False for longer outputs"
            )
        if self.length >= self.buffer.shape[4]:
            self.buffer = torch.cat([self.buffer, torch.empty_like(self.buffer)], dim=4)
        _, _, batch, heads, _, dim = self.buffer.shape
        self.buffer[layer, :, :, :, self.length] = kv.view(batch, 2, heads, dim).transpose(0, 1)
        return self.buffer[layer, 0, :, :, :n], self.buffer[layer, 1, :, :, :n]

    def advance(self) -> None:
        self.length += 1

    def get_seq_length(self) -> int:
        """Positions held (slots and tokens), as a transformers cache reports it."""
        return self.length

    def reorder_cache(self, index: Tensor) -> None:
        """Row i becomes a copy of row index[i] (beam search)."""
        self.buffer = self.buffer.index_select(2, index)


def lean_step(cache: SlotCache, ids: Tensor, position: int, offset: Tensor | None) -> Tensor:
    """One decoding step for ids (B,) at ``position``: last hidden states (B, H)."""
    trunk = cache.trunk
    positions = torch.full_like(ids, position)
    x = trunk.embed(ids, positions)
    if offset is not None:
        x = x + offset.to(x.dtype)
    batch, heads = ids.shape[0], trunk.num_heads
    for layer in range(trunk.num_layers):
        qkv = trunk.qkv(layer, x, positions)
        q = qkv[:, : heads * trunk.head_dim].view(batch, heads, 1, trunk.head_dim)
        keys, values = cache.append(layer, qkv[:, heads * trunk.head_dim :])
        attended = _attend(q.float(), keys, values, trunk.scale(layer), None)
        x = trunk.finish(layer, x, attended.reshape(batch, -1).to(x.dtype))
    cache.advance()
    return trunk.final_norm(x)
