"""Low-precision training of the frozen decoder on CPU.

Autocast re-casts every frozen weight at every use (it caches casts only of weights that train)
and sends bf16 attention to a backward kernel that is slow on CPU.  So on CPU the trainer holds
the frozen decoder weights in bf16 for the training passes instead, keeps the trainable heads,
the optimizer, the loss and the KL in fp32, and restores the fp32 weights (the very tensors,
not a round trip) before evaluation and at the end of the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX tiles or AVX-512 BF16)."""
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, name, None)  # private probes; absent means unknown: no
        if check is not None and check():
            return True
    return False


def default_mixed_precision(device: torch.device) -> str:
    """bf16 on a CUDA device and on CPUs that multiply bf16 natively, fp32 ("no") elsewhere.

    On CPU, bf16 trained as well as fp32 in the measured runs (held-out BLEU 0.604 vs 0.609 on
    the reference's corpus at 16 epochs, 0.403 vs 0.387 on the demo corpus at 10) at 1.5-1.8x
    the speed; see docs/benchmarks.md.
    """
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16()):
        return "bf16"
    return "no"


class FrozenCast:
    """The frozen floating-point parameters of a module, with copies in ``dtype`` made once.

    Inside :meth:`active` the parameters hold the copies; outside, their original tensors (the
    very ones, so nothing is lost to rounding).  Parameters keep their identity, so tied weights
    stay tied; parameters that train are untouched.  Reusing the same copies every time matters
    on CPU: oneDNN keys the packed weights it caches by tensor, so fresh copies each epoch
    would pile up packed weights.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype):
        self.pairs = [
            (param, param.data, param.data.to(dtype))
            for param in module.parameters()
            if not param.requires_grad and param.is_floating_point() and param.dtype != dtype
        ]

    @contextmanager
    def active(self) -> Iterator[None]:
        for param, _, cast in self.pairs:
            param.data = cast
        try:
            yield
        finally:
            for param, original, _ in self.pairs:
                param.data = original


@contextmanager
def frozen_weights_in(module: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """Hold the frozen floating-point parameters of ``module`` in ``dtype`` inside the block
    (see :class:`FrozenCast`)."""
    with FrozenCast(module, dtype).active():
        yield


@contextmanager
def cpu_bf16_decoder(decoder_lm: nn.Module, weights: FrozenCast | None = None) -> Iterator[None]:
    """The frozen decoder LM in bf16, its attention written out (matmul, softmax, matmul).

    ``weights`` are bf16 copies made earlier (:class:`FrozenCast`), or made here.  On CPU the
    SDPA kernels are slow in bf16 at these sizes (flash: ~8x slower backward; math: ~2x slower
    forward) while the eager form runs at matmul speed, so a model that can switch its
    attention implementation does so inside the block; others get SDPA's math kernel.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    weights = weights or FrozenCast(decoder_lm, torch.bfloat16)
    config = getattr(decoder_lm, "config", None)
    sdpa = getattr(config, "_attn_implementation", None) == "sdpa"
    eager = eager_attention(decoder_lm) if sdpa else contextlib.nullcontext()
    with weights.active(), sdpa_kernel([SDPBackend.MATH]), eager:
        yield


@contextmanager
def eager_attention(lm: nn.Module) -> Iterator[None]:
    """The model's attention written out (matmul, softmax, matmul) inside the block, where the
    model can switch implementations; its own implementation is restored after."""
    previous = getattr(getattr(lm, "config", None), "_attn_implementation", None)
    switch = previous != "eager" and hasattr(lm, "set_attn_implementation")
    if switch:
        lm.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            lm.set_attn_implementation(previous)
