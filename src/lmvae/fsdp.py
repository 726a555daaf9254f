"""A decoder too large for one device, sharded over the run's processes (``lmvae train
--fsdp``, ``TrainConfig(fsdp=True)``), with torch's FSDP2 (``fully_shard``).

What is sharded: each transformer block of the decoder (the class its ``_no_split_modules``
names, the unit transformers itself never splits) is one FSDP unit holding the block's frozen
weights; each process keeps 1/N of them.  A block's forward gathers its weights and frees them
after; backward gathers them again to pass the gradient through to the slots.

What stays whole on every process: everything that trains (heads, LoRA adapters, unfrozen top
layers), synchronised by DDP as in any multi-process run.  So frozen and trainable weights
never share a unit (PEFT's FSDP recipe wraps them apart too); the optimizer, gradient clipping
and checkpoints see plain tensors, the same on every process, and the main process saves the
file a single process would.  The encoder and the decoder's embeddings, final norm and output
head stay whole too: the chunked cross-entropy reads the head's weight outside any module's
forward, and FSDP's root unit (the one they would belong to) keeps its weights gathered from
forward to the end of backward anyway, so sharding them would not lower the peak.

The root is the decoder's trunk (``lm.base_model``): every pass through the decoder goes
through it, so it is always the first unit to run, which FSDP2 requires of its root.

With mixed precision the frozen decoder is held in bf16 (or fp16) outright rather than in
fp32 shards cast at each gather: frozen weights need no fp32 master copy, so this halves their
memory and the gather traffic.  Each unit's MixedPrecisionPolicy casts the block's inputs to
that dtype.  Evaluation then runs the decoder in bf16 too.

Every process must make the same passes through the decoder, in the same order: each pass
gathers every block from all processes.  Training batches are split evenly already;
evaluation gives every process as many batches and decoding steps as the busiest one
(:mod:`lmvae.evaluation`).  After an FSDP run the model stays sharded in every process:
load the saved run in one process to use it.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

from lmvae.errors import ConfigError

if TYPE_CHECKING:
    from accelerate import Accelerator

    from lmvae.model import LanguageVAE

#: Mixed-precision settings -> the dtype the frozen decoder is held in.
FROZEN_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def decoder_blocks(lm: nn.Module) -> list[nn.Module]:
    """The decoder's transformer blocks, outermost first: the modules of the classes its
    ``_no_split_modules`` names."""
    names = set(getattr(lm, "_no_split_modules", None) or ())
    blocks: list[nn.Module] = []
    inside: list[str] = []
    for name, module in lm.base_model.named_modules():
        # By the class's ancestry: sharding makes each block an instance of a subclass.
        is_block = any(c.__name__ in names for c in type(module).__mro__)
        if is_block and not any(name.startswith(f"{outer}.") for outer in inside):
            blocks.append(module)
            inside.append(name)
    if not blocks:
        raise ConfigError(
            f"--fsdp cannot find the transformer blocks of {type(lm).__name__}: its class "
            "names none (_no_split_modules); train it without --fsdp"
        )
    return blocks


def shard_decoder(model: LanguageVAE, mixed: str, device: torch.device, world: int) -> str:
    """Shard the frozen weights of the decoder's blocks over the ``world`` processes of the
    process group (every process calls this at the same point, before the model is moved to
    ``device``: each block goes over in shards; a group of one process shards nothing but
    runs every step FSDP adds).  ``mixed`` ("no", "bf16", "fp16") is the run's mixed
    precision.  Returns a line for the log saying what was sharded."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from torch.distributed.tensor import DTensor

    if not torch.distributed.is_initialized():
        return "fsdp: a single process started without a launcher: nothing to shard over"
    lm = model.decoder.lm
    blocks = decoder_blocks(lm)  # before anything changes: an unsupported model fails here
    kind = type(blocks[0]).__name__
    if not is_sharded(model):  # (a second run of the same model in these processes: it is)
        dtype = FROZEN_DTYPES.get(mixed)
        if dtype is not None:
            for param in lm.parameters():
                if not param.requires_grad and param.is_floating_point():
                    param.data = param.data.to(dtype)
        policy = MixedPrecisionPolicy(param_dtype=dtype) if dtype else MixedPrecisionPolicy()
        mesh = init_device_mesh(device.type, (world,))
        for block in blocks:
            trains = {p for p in block.parameters() if p.requires_grad}
            if all(p in trains for p in block.parameters()):
                continue  # an unfrozen layer trains whole on every process
            fully_shard(block, mesh=mesh, mp_policy=policy, ignored_params=trains)
        base = lm.base_model
        whole = {p for p in base.parameters() if not isinstance(p, DTensor)}
        fully_shard(base, mesh=mesh, ignored_params=whole)
        # The root hands back transformers' output, whose hidden states may be a view (GPT-2
        # reshapes them); FSDP warns because an in-place change of it would skip a gather,
        # and lmvae never changes a decoder output in place.
        warnings.filterwarnings(
            "ignore",
            message=rf"FSDP2-wrapped module \({type(base).__name__}\) returned a view tensor",
            category=UserWarning,
        )
    sharded = sum(any(isinstance(p, DTensor) for p in b.parameters()) for b in blocks)
    frozen = next((p.dtype for p in lm.parameters() if not p.requires_grad), None)
    return (
        f"fsdp: {sharded} of {len(blocks)} decoder blocks ({kind}) sharded over {world} "
        f"processes, 1/{world} of their frozen weights ({frozen}) on each; what trains, the "
        "encoder, the embeddings and the output head stay whole on each"
    )


def is_sharded(model: LanguageVAE) -> bool:
    """Whether the model's decoder is sharded over processes (every process must then make
    the same passes through it)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model.decoder.lm.base_model, FSDPModule)


def check_engine(accelerator: Accelerator) -> None:
    """lmvae shards the decoder itself and keeps DDP for what trains: Accelerate's own FSDP
    or DeepSpeed engine would wrap the whole model, frozen encoder and heads included, in a
    way lmvae has never been run with.  Asked for by the launcher's environment (on a CPU
    Accelerate quietly falls back to DDP) or by the accelerator."""
    from accelerate.utils import DistributedType

    asked = [
        name
        for name, variable, engine in (
            ("FSDP", "ACCELERATE_USE_FSDP", DistributedType.FSDP),
            ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED", DistributedType.DEEPSPEED),
        )
        if os.environ.get(variable, "").lower() in ("1", "true")
        or accelerator.distributed_type == engine
    ]
    if asked:
        raise ConfigError(
            f"this Accelerate config asks for its {asked[0]} engine: lmvae shards the decoder "
            "itself. Launch with a multi-GPU config and pass --fsdp to lmvae train "
            "(examples/accelerate_fsdp.yaml)"
        )
