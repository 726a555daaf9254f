"""Frozen linear maps as fast as the CPU allows: bf16 weights packed once for oneDNN, in both
directions, and the GELU MLP with its activation fused and recomputed for backward."""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor


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
