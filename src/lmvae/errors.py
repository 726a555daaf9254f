"""Exceptions whose message is a one-line explanation a user can act on.

The CLI prints these as a single line; anything else is a bug and keeps its traceback.
"""


class LmvaeError(Exception):
    """Base class for every error lmvae raises on bad input."""


class ConfigError(LmvaeError, ValueError):
    """A setting that cannot work."""


class DataError(LmvaeError, ValueError):
    """A corpus or input that cannot be read or is empty."""


class LoadError(LmvaeError, OSError):
    """A model or backbone that cannot be found or does not match its config."""


class TrainingDiverged(LmvaeError, ArithmeticError):
    """Training met too many non-finite losses or gradients in a row and stopped."""


class CheckpointError(LmvaeError, OSError):
    """A checkpoint or a run file could not be written (a full disk, a read-only folder); the
    previous checkpoint is kept."""


class TrainingInterrupted(LmvaeError):
    """SIGTERM or SIGINT stopped training after a step, once a resumable step checkpoint was
    saved; ``lmvae train`` exits with :attr:`exit_code` and ``--resume`` continues the run."""

    #: EX_TEMPFAIL (sysexits.h): a temporary failure, the caller is invited to try again.
    exit_code = 75

    def __init__(self, message: str, signum: int, checkpoint: object = None) -> None:
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint
