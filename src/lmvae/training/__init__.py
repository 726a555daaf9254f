"""Training: set-up (:mod:`.setup`), the loop (:mod:`.loop`) and the run's saved state
(:mod:`.state`)."""

from lmvae.training.loop import train
from lmvae.training.state import TrainResult, save_checkpoint

__all__ = ["TrainResult", "save_checkpoint", "train"]
